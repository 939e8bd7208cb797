/* The native Chrome/Kineto trace scanner: one pass over the JSON text that fills a Trace.
 *
 * It does exactly what chrome.py's decode() + from_chrome() do, for the documents it
 * understands, and declines (raises Declined) on everything else: invalid or unusual JSON
 * (escapes it cannot decode, invalid UTF-8, numbers beyond int64 or double, deep nesting,
 * duplicate fields), any event the Python reader would reject, any value the decoder would
 * build from a container. Declining is always safe: the caller then reads the file through
 * the Python path, which gives the result or the error. So this file only has to be right
 * about what it accepts, and tests/test_scan.py checks that against the Python path on every
 * trace in the repository and on fuzzed ones.
 *
 * The text arrives in chunks (feed()); an event or top-level member cut by a chunk's end is
 * read again, whole, from the next call's buffer. Nothing is emitted for an event until all
 * of it has been read, so a re-read never emits twice.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* small walkers called for every value: inlined, the call itself was a good part of their cost */
#define ALWAYS_INLINE inline __attribute__((always_inline))
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* MORE: the buffer ends inside the item; GIL: the item needs the GIL (an escaped string, a
   number for the exact conversion) and is read again holding it. */
typedef enum { OK = 0, MORE = 1, DECLINE = 2, GIL = 3 } Status;

static PyObject *Declined; /* the exception: the caller reads the file the Python way */

/* ------------------------------------------------------------------ characters */

static unsigned char plain_char[256]; /* 1: a string byte that needs no attention */

static void init_tables(void) {
    for (int c = 0; c < 256; c++) plain_char[c] = (c >= 0x20 && c < 0x80 && c != '"' && c != '\\');
}

/* The first byte at or after p that is not a plain string byte (or end). */
static inline const char *skip_plain(const char *p, const char *end) {
#if defined(__SSE2__)
    /* 16 bytes a compare: a quote, a backslash, or (as signed bytes) below 0x20, which takes
       the control characters and every byte >= 0x80 */
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'), space = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                                   _mm_cmplt_epi8(v, space));
        int mask = _mm_movemask_epi8(hit);
        if (mask) return p + __builtin_ctz((unsigned)mask);
        p += 16;
    }
#endif
    while (p < end && plain_char[(unsigned char)*p]) p++;
    return p;
}

static inline const char *skip_ws(const char *p, const char *end) {
    if (p < end && (unsigned char)*p > ' ') return p; /* the usual case: no whitespace */
    if (end - p >= 2 && *p == ' ' && (unsigned char)p[1] > ' ') return p + 1; /* ", " and ": " */
#if defined(__SSE2__)
    /* a newline and an indent, as Kineto writes between fields and events */
    const __m128i space = _mm_set1_epi8(' '), newline = _mm_set1_epi8('\n'), cr = _mm_set1_epi8('\r'),
                  tab = _mm_set1_epi8('\t');
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        __m128i ws = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, space), _mm_cmpeq_epi8(v, newline)),
                                  _mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, tab)));
        unsigned mask = (unsigned)_mm_movemask_epi8(ws);
        if (mask != 0xFFFF) return p + __builtin_ctz(~mask);
        p += 16;
    }
#endif
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    return p;
}

/* One UTF-8 sequence starting at p (a byte >= 0x80): its length, 0 if invalid, -1 if cut off. */
static int utf8_length(const unsigned char *p, const unsigned char *end) {
    unsigned char c = p[0];
    int n;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; }
    else return 0;
    if (end - p < n) return -1;
    for (int i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return n;
}

/* ------------------------------------------------------------------ strings */

typedef struct {
    char *data;
    Py_ssize_t size;
    int nogil; /* set while events are parsed without the GIL: decoding into it must wait */
} Scratch;

typedef struct {
    const char *ptr; /* the string's UTF-8 bytes: in the text, or in a scratch buffer where escaped */
    Py_ssize_t len;
    int ascii;       /* no byte >= 0x80 */
} Str;

static int hex4(const char *p, uint32_t *out) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

/* Decode the escaped string body [p, close) into scratch. */
static Status unescape(const char *p, const char *close, Scratch *scratch, Str *out) {
    if (scratch->nogil) return GIL; /* PyMem_Realloc needs it */
    Py_ssize_t need = close - p;
    if (scratch->size < need) {
        char *grown = PyMem_Realloc(scratch->data, (size_t)need);
        if (grown == NULL) return DECLINE;
        scratch->data = grown;
        scratch->size = need;
    }
    char *w = scratch->data;
    int ascii = 1;
    while (p < close) {
        unsigned char c = (unsigned char)*p;
        if (c != '\\') {
            if (c >= 0x80) ascii = 0;
            *w++ = (char)c;
            p++;
            continue;
        }
        char e = p[1];
        p += 2;
        switch (e) {
            case '"': *w++ = '"'; break;
            case '\\': *w++ = '\\'; break;
            case '/': *w++ = '/'; break;
            case 'b': *w++ = '\b'; break;
            case 'f': *w++ = '\f'; break;
            case 'n': *w++ = '\n'; break;
            case 'r': *w++ = '\r'; break;
            case 't': *w++ = '\t'; break;
            case 'u': {
                uint32_t cp, low;
                if (close - p < 4 || !hex4(p, &cp)) return DECLINE;
                p += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF) { /* a pair, or nothing this scanner takes */
                    if (close - p < 6 || p[0] != '\\' || p[1] != 'u' || !hex4(p + 2, &low) || low < 0xDC00 ||
                        low > 0xDFFF)
                        return DECLINE;
                    p += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    return DECLINE;
                }
                /* UTF-8 is never longer than the escape it replaces (6 or 12 bytes). */
                if (cp < 0x80) {
                    *w++ = (char)cp;
                } else if (cp < 0x800) {
                    *w++ = (char)(0xC0 | (cp >> 6));
                    *w++ = (char)(0x80 | (cp & 0x3F));
                    ascii = 0;
                } else if (cp < 0x10000) {
                    *w++ = (char)(0xE0 | (cp >> 12));
                    *w++ = (char)(0x80 | ((cp >> 6) & 0x3F));
                    *w++ = (char)(0x80 | (cp & 0x3F));
                    ascii = 0;
                } else {
                    *w++ = (char)(0xF0 | (cp >> 18));
                    *w++ = (char)(0x80 | ((cp >> 12) & 0x3F));
                    *w++ = (char)(0x80 | ((cp >> 6) & 0x3F));
                    *w++ = (char)(0x80 | (cp & 0x3F));
                    ascii = 0;
                }
                break;
            }
            default: return DECLINE;
        }
    }
    out->ptr = scratch->data;
    out->len = w - scratch->data;
    out->ascii = ascii;
    return OK;
}

/* A string whose opening quote is at *pp. With scratch NULL it is only checked and skipped. */
static Status read_string(const char **pp, const char *end, Scratch *scratch, Str *out) {
    const char *start = *pp + 1;
    const char *p = start;
    int escaped = 0, ascii = 1;
    for (;;) {
        p = skip_plain(p, end);
        if (p >= end) return MORE;
        unsigned char c = (unsigned char)*p;
        if (c == '"') break;
        if (c == '\\') {
            if (end - p < 2) return MORE;
            escaped = 1;
            p += 2; /* the escape itself is checked when decoded; skipped strings check it here */
            if (p[-1] == 'u') {
                uint32_t cp;
                if (end - p < 4) return MORE;
                if (!hex4(p, &cp)) return DECLINE;
                if (cp >= 0xD800 && cp <= 0xDFFF && scratch == NULL) {
                    /* the decoder rejects lone surrogates even in fields it skips */
                    uint32_t low;
                    if (cp > 0xDBFF) return DECLINE;
                    if (end - p < 10) return MORE;
                    if (p[4] != '\\' || p[5] != 'u' || !hex4(p + 6, &low) || low < 0xDC00 || low > 0xDFFF)
                        return DECLINE;
                    p += 6;
                }
                p += 4;
            } else if (!strchr("\"\\/bfnrt", p[-1]) || p[-1] == '\0') {
                return DECLINE;
            }
            continue;
        }
        if (c < 0x20) return DECLINE;
        int n = utf8_length((const unsigned char *)p, (const unsigned char *)end);
        if (n < 0) return MORE;
        if (n == 0) return DECLINE;
        ascii = 0;
        p += n;
    }
    *pp = p + 1;
    if (out == NULL) return OK;
    if (!escaped) {
        out->ptr = start;
        out->len = p - start;
        out->ascii = ascii;
        return OK;
    }
    return unescape(start, p, scratch, out);
}

/* ------------------------------------------------------------------ numbers */

/* What a field the decoder converts (typed Any) holds. V_BIGINT: an integer beyond int64, which
   the decoder keeps as a Python int (the scanner declines where one is used); V_OTHER: a boolean,
   an array or an object (neither None, nor a number, nor a string). */
typedef enum { V_ABSENT = 0, V_NULL, V_OTHER, V_INT, V_BIGINT, V_FLOAT, V_STR } ValueKind;

typedef struct {
    ValueKind kind;
    int64_t i;
    double d;
} Num;

static const double exact_powers[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                      1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* A JSON number at *pp: an int64 where it is an integer literal, else a finite double. The
   exact conversion of a float the fast path cannot take needs the GIL (nogil: GIL status). */
static Status read_number(const char **pp, const char *end, Num *out, int nogil) {
    const char *p = *pp, *start = p;
    int negative = 0;
    if (*p == '-') {
        negative = 1;
        if (++p >= end) return MORE;
    }
    if (*p < '0' || *p > '9') return DECLINE;
    uint64_t mantissa = 0;
    int digits = 0, overflow = 0, exp10 = 0;
    if (*p == '0') {
        p++;
        if (p < end && *p >= '0' && *p <= '9') return DECLINE; /* a leading zero */
    } else {
        while (p < end && *p >= '0' && *p <= '9') {
            if (digits < 19) mantissa = mantissa * 10 + (uint64_t)(*p - '0');
            else overflow = 1;
            digits += mantissa != 0;
            p++;
        }
    }
    int is_float = 0;
    if (p < end && *p == '.') {
        is_float = 1;
        p++;
        if (p >= end) return MORE;
        if (*p < '0' || *p > '9') return DECLINE;
        while (p < end && *p >= '0' && *p <= '9') {
            if (digits < 19) {
                mantissa = mantissa * 10 + (uint64_t)(*p - '0');
                exp10--;
                digits += mantissa != 0;
            } else {
                overflow = 1;
            }
            p++;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        is_float = 1;
        overflow = 1; /* exponents take the exact route */
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end) return MORE;
        if (*p < '0' || *p > '9') return DECLINE;
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p >= end) return MORE; /* the number may go on in the next chunk */
    *pp = p;
    if (!is_float) {
        /* int64 but its least value: the Python path takes ints in (-2**63, 2**63) as times */
        if (overflow || mantissa > (uint64_t)INT64_MAX) {
            out->kind = V_BIGINT;
            return OK;
        }
        out->kind = V_INT;
        out->i = negative ? -(int64_t)mantissa : (int64_t)mantissa;
        return OK;
    }
    double value;
    if (!overflow && mantissa <= (1ULL << 53) && exp10 >= -22) {
        value = (double)mantissa / exact_powers[-exp10]; /* both exact: one correctly rounded division */
        if (negative) value = -value;
    } else {
        if (nogil) return GIL;
        char buffer[400];
        Py_ssize_t len = p - start;
        if (len >= (Py_ssize_t)sizeof(buffer)) return DECLINE;
        memcpy(buffer, start, (size_t)len);
        buffer[len] = '\0';
        char *stop = NULL;
        value = PyOS_string_to_double(buffer, &stop, NULL);
        if (value == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            return DECLINE;
        }
        if (stop != buffer + len) return DECLINE;
    }
    if (!isfinite(value)) return DECLINE;
    out->kind = V_FLOAT;
    out->d = value;
    return OK;
}

/* ------------------------------------------------------------------ skipping */

#define MAX_DEPTH 64 /* real traces nest a few levels; deeper documents go the Python way */

static Status skip_value(const char **pp, const char *end, int depth, int convert);

/* Walking an object or array: open_container at its bracket, then for each member read_key
   (objects only) and the value, then after_value; *closed says when the container has ended. */
static Status open_container(const char **pp, const char *end, char close, int *closed) {
    const char *p = skip_ws(*pp + 1, end);
    if (p >= end) return MORE;
    *closed = *p == close;
    *pp = *closed ? p + 1 : p;
    return OK;
}

/* The key at *pp (a quote, or declined) and the colon after it: *pp at the value. With scratch
   NULL the key is only checked. */
static Status read_key(const char **pp, const char *end, Scratch *scratch, Str *key) {
    const char *p = *pp;
    Status s;
    if (*p != '"') return DECLINE;
    if ((s = read_string(&p, end, scratch, key)) != OK) return s;
    p = skip_ws(p, end);
    if (p >= end) return MORE;
    if (*p != ':') return DECLINE;
    p = skip_ws(p + 1, end);
    if (p >= end) return MORE;
    *pp = p;
    return OK;
}

static ALWAYS_INLINE Status after_value(const char **pp, const char *end, char close, int *closed) {
    const char *p = skip_ws(*pp, end);
    if (p >= end) return MORE;
    if (*p == close) {
        *closed = 1;
        *pp = p + 1;
        return OK;
    }
    if (*p != ',') return DECLINE;
    p = skip_ws(p + 1, end);
    if (p >= end) return MORE;
    *closed = 0;
    *pp = p;
    return OK;
}

static inline const char *skip_digits(const char *p, const char *end) {
    while (p < end && *p >= '0' && *p <= '9') p++;
    return p;
}

/* A number of the JSON grammar at *pp, checked, not converted: in fields the decoder skips,
   any such number passes (beyond int64 or double too). */
static Status skip_number(const char **pp, const char *end) {
    const char *p = *pp;
    if (*p == '-' && ++p >= end) return MORE;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9') p = skip_digits(p, end);
    else return DECLINE;
    if (p < end && *p == '.') {
        if (++p >= end) return MORE;
        if (*p < '0' || *p > '9') return DECLINE;
        p = skip_digits(p, end);
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end) return MORE;
        if (*p < '0' || *p > '9') return DECLINE;
        p = skip_digits(p, end);
    }
    if (p >= end) return MORE; /* the number may go on in the next piece */
    if (*p >= '0' && *p <= '9') return DECLINE; /* a leading zero */
    *pp = p;
    return OK;
}

static Status skip_literal(const char **pp, const char *end, const char *word, size_t len) {
    if ((size_t)(end - *pp) < len) return memcmp(*pp, word, (size_t)(end - *pp)) == 0 ? MORE : DECLINE;
    if (memcmp(*pp, word, len) != 0) return DECLINE;
    *pp += len;
    return OK;
}

/* An array or object; with convert, its numbers are checked as the decoder converts them
   (a float beyond double is its error) where it builds the value (a field typed Any). */
static Status skip_container(const char **pp, const char *end, int depth, char close, int convert) {
    if (depth >= MAX_DEPTH) return DECLINE;
    const char *p = *pp;
    int closed;
    Status s;
    if ((s = open_container(&p, end, close, &closed)) != OK) return s;
    while (!closed) {
        if (close == '}' && (s = read_key(&p, end, NULL, NULL)) != OK) return s;
        if ((s = skip_value(&p, end, depth + 1, convert)) != OK) return s;
        if ((s = after_value(&p, end, close, &closed)) != OK) return s;
    }
    *pp = p;
    return OK;
}

/* convert: 0, grammar only; 1, numbers converted (a field typed Any); 2, the same without the GIL. */
static Status skip_value(const char **pp, const char *end, int depth, int convert) {
    switch (**pp) {
        case '"': return read_string(pp, end, NULL, NULL);
        case '{': return skip_container(pp, end, depth, '}', convert);
        case '[': return skip_container(pp, end, depth, ']', convert);
        case 't': return skip_literal(pp, end, "true", 4);
        case 'f': return skip_literal(pp, end, "false", 5);
        case 'n': return skip_literal(pp, end, "null", 4);
        default:
            if (convert) {
                Num ignored;
                return read_number(pp, end, &ignored, convert == 2);
            }
            return skip_number(pp, end);
    }
}

/* A field the decoder converts (typed Any): what kind of value, and the number or string. */
static Status read_scalar(const char **pp, const char *end, Scratch *scratch, Num *num, Str *str) {
    const char *p = *pp;
    Status s;
    if (*p == '"') {
        if ((s = read_string(&p, end, scratch, str)) != OK) return s;
        num->kind = V_STR;
    } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
        if ((s = read_number(&p, end, num, scratch->nogil)) != OK) return s;
    } else { /* true, false, null, an array or an object, checked as the decoder builds them */
        if ((s = skip_value(&p, end, 1, scratch->nogil ? 2 : 1)) != OK) return s;
        num->kind = **pp == 'n' ? V_NULL : V_OTHER;
    }
    *pp = p;
    return OK;
}

/* ------------------------------------------------------------------ names */

/* Distinct strings (names, step names) built once: a trace repeats a few thousand names. */
typedef struct {
    uint64_t hash;
    PyObject *str; /* NULL: empty slot */
    const char *utf8; /* the string's own UTF-8 bytes (owned by str) */
    Py_ssize_t len;
    int api_kind;  /* -1 until asked: 0 none, 1 sync, 2 allocation, 3 free */
    int flop_name; /* -1 until asked */
    int step;      /* starts with "ProfilerStep#" */
} Name;

typedef struct {
    Name *slots;
    size_t mask, used;
} Names;

static uint64_t hash_bytes(const char *p, Py_ssize_t n) {
    /* eight bytes a step: kernel names run to hundreds of bytes and are hashed once per launch */
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)n, word;
    for (; n >= 8; p += 8, n -= 8) {
        memcpy(&word, p, 8);
        h = (h ^ word) * 0x9E3779B97F4A7C15ULL;
        h ^= h >> 29;
    }
    word = 0;
    memcpy(&word, p, (size_t)n);
    h = (h ^ word) * 0x9E3779B97F4A7C15ULL;
    return h ^ (h >> 32);
}

static int names_grow(Names *t) {
    size_t size = t->mask ? (t->mask + 1) * 2 : 1024;
    Name *slots = PyMem_Calloc(size, sizeof(Name));
    if (slots == NULL) return 0;
    for (size_t i = 0; t->slots && i <= t->mask; i++) {
        if (t->slots[i].str == NULL) continue;
        size_t j = t->slots[i].hash & (size - 1);
        while (slots[j].str != NULL) j = (j + 1) & (size - 1);
        slots[j] = t->slots[i];
    }
    PyMem_Free(t->slots);
    t->slots = slots;
    t->mask = size - 1;
    return 1;
}

static Name *name_of(Names *t, const Str *s) {
    if ((t->used + 1) * 2 > t->mask + 1 && !names_grow(t)) return NULL;
    uint64_t h = hash_bytes(s->ptr, s->len);
    size_t j = h & t->mask;
    while (t->slots[j].str != NULL) {
        Name *n = &t->slots[j];
        if (n->hash == h && n->len == s->len && memcmp(n->utf8, s->ptr, (size_t)s->len) == 0) return n;
        j = (j + 1) & t->mask;
    }
    PyObject *str = PyUnicode_DecodeUTF8(s->ptr, s->len, "strict");
    if (str == NULL) {
        PyErr_Clear();
        return NULL;
    }
    Py_ssize_t len;
    const char *utf8 = PyUnicode_AsUTF8AndSize(str, &len);
    if (utf8 == NULL) {
        PyErr_Clear();
        Py_DECREF(str);
        return NULL;
    }
    Name *n = &t->slots[j];
    n->hash = h;
    n->str = str;
    n->utf8 = utf8;
    n->len = len;
    n->api_kind = -1;
    n->flop_name = -1;
    n->step = s->len >= 13 && memcmp(s->ptr, "ProfilerStep#", 13) == 0;
    t->used++;
    return n;
}

static void names_clear(Names *t) {
    for (size_t i = 0; t->slots && i <= t->mask; i++) Py_XDECREF(t->slots[i].str);
    PyMem_Free(t->slots);
    t->slots = NULL;
    t->mask = t->used = 0;
}

/* ------------------------------------------------------------------ the scanner */

enum Role { R_NONE = 0, R_KERNEL, R_MEMCPY, R_MEMSET, R_OP, R_API, R_ANNOTATION };

typedef enum {
    P_START,        /* before the document */
    P_TOP_FIRST,    /* after '{': a member or '}' */
    P_TOP_NEXT,     /* after a member: ',' or '}' */
    P_TOP_MEMBER,   /* after ',': a member */
    P_EVENTS_FIRST, /* after '[': an event or ']' */
    P_EVENTS_NEXT,  /* after an event: ',' or ']' */
    P_EVENT,        /* after ',': an event */
    P_END           /* after the document: whitespace only */
} Phase;

typedef struct {
    PyObject_HEAD
    /* the Trace's lists, filled in place */
    PyObject *device_ops, *host, *syncs, *ops, *op_names, *api_calls, *allocations, *frees, *step_spans;
    PyObject *step_names;      /* set */
    PyObject *flop_candidates; /* list of (name, args text or None) */
    PyTypeObject *device_op_type, *api_call_type;
    PyObject *kinds[3];        /* KERNEL, MEMCPY, MEMSET */
    PyObject *api_kind;        /* callable: name -> 0..3 */
    PyObject *flop_names;      /* set of operator names whose FLOPs the analysis counts */
    PyObject *device_properties, *distributed_info; /* raw JSON or NULL */
    double scale;
    Phase phase;
    int bare;                  /* the document is the event array itself */
    int seen_top;              /* bit per top-level member read: a repeat declines */
    int has_base, base_is_int;
    int64_t base_i;
    double base_d;
    Names names;
    Scratch scratch[4];        /* ph, cat, name, keys */
    struct Event *batch;       /* events parsed without the GIL, emitted after */
    int gil_next;              /* the next event needs the GIL: read it alone */
    int busy;                  /* inside feed() */
} Scanner;

typedef struct Event {
    Num ph_num, cat_num, name_num, ts, dur, pid, tid;
    Str ph, cat, name;
    int args_object;
    Num correlation, device, stream;
    int flops_given;
    Str flop_fields[4]; /* the JSON of args' flops, Input Dims, Input type, Concrete Inputs (ptr NULL: absent) */
} Event;

static int role_of(const Str *cat) {
    static const struct { const char *name; int role; } table[] = {
        {"kernel", R_KERNEL}, {"gpu_memcpy", R_MEMCPY}, {"gpu_memset", R_MEMSET}, {"memcpy", R_MEMCPY},
        {"memset", R_MEMSET}, {"cpu_op", R_OP}, {"operator", R_OP}, {"cuda_runtime", R_API},
        {"runtime", R_API}, {"cuda_driver", R_API}, {"driver", R_API}, {"user_annotation", R_ANNOTATION},
    };
    char lower[16];
    if (!cat->ascii) return -1; /* str.lower() of non-ASCII text: not this scanner's business */
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if ((size_t)cat->len == strlen(table[i].name) && memcmp(cat->ptr, table[i].name, (size_t)cat->len) == 0)
            return table[i].role;
    if (cat->len > (Py_ssize_t)sizeof(lower)) return R_NONE;
    for (Py_ssize_t i = 0; i < cat->len; i++) {
        char c = cat->ptr[i];
        lower[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if ((size_t)cat->len == strlen(table[i].name) && memcmp(lower, table[i].name, (size_t)cat->len) == 0)
            return table[i].role;
    return R_NONE;
}

/* A key against a literal: the length first, then a compare of known size (inlined). */
#define KEY_IS(key, literal) \
    ((key)->len == (Py_ssize_t)sizeof(literal) - 1 && memcmp((key)->ptr, literal, sizeof(literal) - 1) == 0)

/* The members of an event's "args" object that the reader uses. */
static Status read_args(Scanner *self, const char **pp, const char *end, Event *ev) {
    const char *p = *pp;
    int closed;
    Status s;
    if ((s = open_container(&p, end, '}', &closed)) != OK) return s;
    while (!closed) {
        Str key;
        if ((s = read_key(&p, end, &self->scratch[3], &key)) != OK) return s;
        Num *target = NULL;
        int bit = 0, field = -1;
        switch (key.len) {
            case 11:
                if (KEY_IS(&key, "correlation")) target = &ev->correlation, bit = 1;
                break;
            case 6:
                if (KEY_IS(&key, "device")) target = &ev->device, bit = 2;
                else if (KEY_IS(&key, "stream")) target = &ev->stream, bit = 4;
                break;
            case 5:
                if (KEY_IS(&key, "flops")) bit = 8, field = 0;
                break;
            case 10:
                if (KEY_IS(&key, "Input Dims")) field = 1;
                else if (KEY_IS(&key, "Input type")) field = 2;
                break;
            case 15:
                if (KEY_IS(&key, "Concrete Inputs")) field = 3;
                break;
        }
        const char *value = p;
        if (target != NULL) { /* a repeated field overwrites: the decoder keeps the last */
            Str ignored;
            if ((s = read_scalar(&p, end, &self->scratch[3], target, &ignored)) != OK) return s;
        } else if (bit == 8) {
            Num flops;
            Str ignored;
            if ((s = read_scalar(&p, end, &self->scratch[3], &flops, &ignored)) != OK) return s;
            ev->flops_given = flops.kind != V_NULL;
        } else {
            if ((s = skip_value(&p, end, 2, 0)) != OK) return s;
        }
        if (field >= 0) { /* kept as text for the FLOP count; a repeated field keeps the last */
            ev->flop_fields[field].ptr = value;
            ev->flop_fields[field].len = p - value;
        }
        if ((s = after_value(&p, end, '}', &closed)) != OK) return s;
    }
    *pp = p;
    return OK;
}

/* One event object at *pp, read whole into ev. */
static Status read_event(Scanner *self, const char **pp, const char *end, Event *ev) {
    const char *p = *pp;
    Status s;
    int closed;
    memset(ev, 0, sizeof(*ev));
    if (*p != '{') return DECLINE; /* an event that is not an object: the reader rejects it */
    if ((s = open_container(&p, end, '}', &closed)) != OK) return s;
    while (!closed) {
        Str key;
        if ((s = read_key(&p, end, &self->scratch[3], &key)) != OK) return s;
        Num *num = NULL;
        Str *str = NULL;
        Scratch *scratch = &self->scratch[3];
        int bit = 0;
        switch (key.len) {
            case 2:
                if (KEY_IS(&key, "ph")) num = &ev->ph_num, str = &ev->ph, scratch = &self->scratch[0], bit = 1;
                else if (KEY_IS(&key, "ts")) num = &ev->ts, bit = 2;
                break;
            case 3:
                if (KEY_IS(&key, "cat")) num = &ev->cat_num, str = &ev->cat, scratch = &self->scratch[1], bit = 4;
                else if (KEY_IS(&key, "dur")) num = &ev->dur, bit = 8;
                else if (KEY_IS(&key, "pid")) num = &ev->pid, bit = 16;
                else if (KEY_IS(&key, "tid")) num = &ev->tid, bit = 32;
                break;
            case 4:
                if (KEY_IS(&key, "name")) num = &ev->name_num, str = &ev->name, scratch = &self->scratch[2], bit = 64;
                else if (KEY_IS(&key, "args")) bit = 128;
                break;
        }
        /* a repeated field overwrites: the decoder keeps the last */
        if (bit == 128) {
            Num absent = {V_ABSENT, 0, 0.0};
            ev->correlation = ev->device = ev->stream = absent; /* a repeated args object is replaced whole */
            ev->flops_given = 0;
            ev->args_object = 0;
            memset(ev->flop_fields, 0, sizeof(ev->flop_fields));
            if (*p == '{') {
                ev->args_object = 1;
                if ((s = read_args(self, &p, end, ev)) != OK) return s;
            } else {
                Num ignored;
                Str ignored_str;
                if ((s = read_scalar(&p, end, &self->scratch[3], &ignored, &ignored_str)) != OK) return s;
            }
        } else if (num != NULL) {
            Str ignored;
            if ((s = read_scalar(&p, end, scratch, num, str ? str : &ignored)) != OK) return s;
        } else {
            if ((s = skip_value(&p, end, 1, 0)) != OK) return s;
        }
        if ((s = after_value(&p, end, '}', &closed)) != OK) return s;
    }
    *pp = p;
    return OK;
}

static const double TIME_LIMIT_US = 1e15; /* as chrome.py's _TIME_LIMIT_US */

/* The tuples made here hold only floats, ints, strings and None, so they can be in no reference
   cycle: they are untracked, and the collector never walks the million of them (it untracks
   such tuples itself, but only after walking them once). */
static PyObject *pair(PyObject *a, PyObject *b) {
    PyObject *t = PyTuple_New(2);
    if (t == NULL) return NULL;
    Py_INCREF(a);
    Py_INCREF(b);
    PyTuple_SET_ITEM(t, 0, a);
    PyTuple_SET_ITEM(t, 1, b);
    PyObject_GC_UnTrack(t);
    return t;
}

/* An instance of a NamedTuple class from owned references (stolen, also on failure). */
static PyObject *named_tuple(PyTypeObject *type, PyObject **items, Py_ssize_t n) {
    PyObject *t = type->tp_alloc(type, n);
    if (t == NULL) {
        for (Py_ssize_t i = 0; i < n; i++) Py_XDECREF(items[i]);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) PyTuple_SET_ITEM(t, i, items[i]);
    PyObject_GC_UnTrack(t);
    return t;
}

static int append_new(PyObject *list, PyObject *item) {
    if (item == NULL) return -1;
    int r = PyList_Append(list, item);
    Py_DECREF(item);
    return r;
}

/* chrome.py's ``value if value is not None else fallback``. */
static const Num *unless_none(const Num *value, const Num *fallback) {
    return (value->kind != V_ABSENT && value->kind != V_NULL) ? value : fallback;
}

/* chrome.py's _read_events for one event: emit it, skip it, or decline. -1: a Python error. */
static int emit(Scanner *self, const Event *ev, Status *status) {
    *status = OK;
    if (ev->ph_num.kind != V_STR || ev->ph.len != 1 || ev->ph.ptr[0] != 'X' || ev->cat_num.kind != V_STR) return 0;
    int role = role_of(&ev->cat);
    if (role < 0) goto decline;
    if (role == R_NONE) return 0;
    Name *name = NULL;
    if (ev->name_num.kind == V_STR && (name = name_of(&self->names, &ev->name)) == NULL) goto decline;
    int is_step = (role == R_ANNOTATION || role == R_OP) && name != NULL && name->step;
    if (role == R_ANNOTATION && !is_step) return 0;
    const Num *ts = &ev->ts, *dur = &ev->dur;
    if ((ts->kind != V_INT && ts->kind != V_FLOAT) || (dur->kind != V_INT && dur->kind != V_FLOAT)) goto decline;
    if (ts->kind == V_INT && ts->i == INT64_MIN) goto decline;
    if (dur->kind == V_INT ? dur->i < 0 : dur->d < 0) goto decline;
    if (!self->has_base) {
        self->has_base = 1;
        self->base_is_int = ts->kind == V_INT;
        self->base_i = ts->i;
        self->base_d = ts->d;
    }
    double offset;
    if (ts->kind == V_INT && self->base_is_int) {
        int64_t diff;
        if (__builtin_sub_overflow(ts->i, self->base_i, &diff)) goto decline;
        offset = (double)diff;
    } else {
        double a = ts->kind == V_INT ? (double)ts->i : ts->d;
        double b = self->base_is_int ? (double)self->base_i : self->base_d;
        offset = a - b;
    }
    double start = offset * self->scale;
    double end = start + (dur->kind == V_INT ? (double)dur->i : dur->d) * self->scale;
    if (!(-TIME_LIMIT_US < start && start <= end && end < TIME_LIMIT_US)) goto decline;

    PyObject *s = PyFloat_FromDouble(start), *e = PyFloat_FromDouble(end), *span = NULL;
    if (s == NULL || e == NULL) goto fail;
    if (is_step) {
        if (PySet_Add(self->step_names, name->str) < 0 || append_new(self->step_spans, pair(s, e)) < 0) goto fail;
        goto done;
    }
    if (name == NULL) goto decline_with_times;
    PyObject *correlation;
    const Num *c = &ev->correlation;
    int has_correlation = ev->args_object && c->kind == V_INT && c->i != 0;
    if (ev->args_object && c->kind == V_BIGINT) goto decline_with_times;
    if (role == R_KERNEL || role == R_MEMCPY || role == R_MEMSET) {
        Num absent = {V_ABSENT, 0, 0.0};
        const Num *device = unless_none(ev->args_object ? &ev->device : &absent, &ev->pid);
        const Num *stream = unless_none(ev->args_object ? &ev->stream : &absent, &ev->tid);
        if (device->kind == V_BIGINT || stream->kind == V_BIGINT) goto decline_with_times;
        PyObject *items[7];
        items[0] = s;
        items[1] = e;
        Py_INCREF(s);
        Py_INCREF(e);
        items[2] = self->kinds[role - R_KERNEL];
        Py_INCREF(items[2]);
        items[3] = name->str;
        Py_INCREF(items[3]);
        items[4] = PyLong_FromLongLong(device->kind == V_INT ? device->i : 0);
        items[5] = PyLong_FromLongLong(stream->kind == V_INT ? stream->i : 0);
        items[6] = has_correlation ? PyLong_FromLongLong(c->i) : (Py_INCREF(Py_None), Py_None);
        if (items[4] == NULL || items[5] == NULL || items[6] == NULL) {
            for (int i = 0; i < 7; i++) Py_XDECREF(items[i]);
            goto fail;
        }
        if (append_new(self->device_ops, named_tuple(self->device_op_type, items, 7)) < 0) goto fail;
        goto done;
    }
    if ((span = pair(s, e)) == NULL || PyList_Append(self->host, span) < 0) goto fail;
    if (role == R_API) {
        if (name->api_kind < 0) {
            PyObject *kind = PyObject_CallOneArg(self->api_kind, name->str);
            if (kind == NULL) goto fail;
            name->api_kind = (int)PyLong_AsLong(kind);
            Py_DECREF(kind);
            if (name->api_kind == -1 && PyErr_Occurred()) goto fail;
        }
        Py_INCREF(name->str);
        Py_INCREF(s);
        Py_INCREF(e);
        PyObject *items[3] = {name->str, s, e};
        PyObject *call = named_tuple(self->api_call_type, items, 3);
        if (call == NULL) goto fail;
        if (has_correlation) {
            correlation = PyLong_FromLongLong(c->i);
            if (correlation == NULL || PyDict_SetItem(self->api_calls, correlation, call) < 0) {
                Py_XDECREF(correlation);
                Py_DECREF(call);
                goto fail;
            }
            Py_DECREF(correlation);
        }
        int r = 0;
        if (name->api_kind == 1) r = PyList_Append(self->syncs, span);
        else if (name->api_kind == 2) r = PyList_Append(self->allocations, call);
        else if (name->api_kind == 3) r = PyList_Append(self->frees, call);
        Py_DECREF(call);
        if (r < 0) goto fail;
        goto done;
    }
    /* an operator */
    if (PyList_Append(self->ops, span) < 0 || PyList_Append(self->op_names, name->str) < 0) goto fail;
    if (name->flop_name < 0) {
        name->flop_name = PySet_Contains(self->flop_names, name->str);
        if (name->flop_name < 0) goto fail;
    }
    if (name->flop_name || (ev->args_object && ev->flops_given)) {
        PyObject *candidate = PyTuple_New(5);
        if (candidate == NULL) goto fail;
        Py_INCREF(name->str);
        PyTuple_SET_ITEM(candidate, 0, name->str);
        for (int i = 0; i < 4; i++) {
            const Str *f = &ev->flop_fields[i];
            PyObject *text = (ev->args_object && f->ptr != NULL) ? PyBytes_FromStringAndSize(f->ptr, f->len)
                                                                 : (Py_INCREF(Py_None), Py_None);
            if (text == NULL) {
                Py_DECREF(candidate);
                goto fail;
            }
            PyTuple_SET_ITEM(candidate, i + 1, text);
        }
        if (append_new(self->flop_candidates, candidate) < 0) goto fail;
    }
done:
    Py_XDECREF(span);
    Py_DECREF(s);
    Py_DECREF(e);
    return 0;
fail:
    Py_XDECREF(span);
    Py_XDECREF(s);
    Py_XDECREF(e);
    return -1;
decline_with_times:
    Py_DECREF(s);
    Py_DECREF(e);
decline:
    *status = DECLINE;
    return 0;
}

static PyObject *decline(const char *why, Py_ssize_t at) {
    PyErr_Format(Declined, "%s (near byte %zd of the chunk)", why, at);
    return NULL;
}

/* A top-level member at *pp (its key's quote): read whole, or MORE. */
static Status read_member(Scanner *self, const char **pp, const char *end) {
    const char *p = *pp;
    Str key;
    Status s;
    if ((s = read_key(&p, end, &self->scratch[3], &key)) != OK) return s;
    int bit = KEY_IS(&key, "traceEvents") ? 1 : KEY_IS(&key, "deviceProperties") ? 2 : KEY_IS(&key, "distributedInfo") ? 4 : 0;
    if (bit & self->seen_top & 1) return DECLINE; /* a second event array: the decoder keeps the last */
    self->seen_top |= bit; /* set only once the member is committed below */
    if (bit == 1) {
        if (*p != '[') goto undo; /* not an array: the reader says so */
        *pp = p + 1;
        self->phase = P_EVENTS_FIRST;
        return OK;
    }
    const char *value = p;
    if ((s = skip_value(&p, end, 1, bit != 0)) != OK) goto undo_status;
    if (bit) { /* decoded by the caller, which declines where the decoder would fail */
        PyObject *raw = PyBytes_FromStringAndSize(value, p - value);
        if (raw == NULL) return DECLINE;
        if (bit == 2) Py_XSETREF(self->device_properties, raw);
        else Py_XSETREF(self->distributed_info, raw);
    }
    *pp = p;
    self->phase = P_TOP_NEXT;
    return OK;
undo:
    s = DECLINE;
undo_status:
    self->seen_top &= ~bit;
    return s;
}

#define BATCH 2048 /* events parsed without the GIL before they are emitted with it */

static void set_nogil(Scanner *self, int nogil) {
    for (int i = 0; i < 4; i++) self->scratch[i].nogil = nogil;
}

/* Consecutive events from *pp, parsed into self->batch without touching Python objects, so
   the caller can release the GIL meanwhile (a thread decompressing the next piece takes it).
   Stops at the array's end, the buffer's end, a full batch, or an event that needs the GIL
   or declines: the caller reads that one again itself. */
static Status parse_batch(Scanner *self, const char **pp, const char *end, Py_ssize_t *count) {
    const char *p = *pp;
    Phase phase = self->phase;
    Py_ssize_t n = 0;
    Status s = OK;
    while (n < BATCH) {
        p = skip_ws(p, end);
        if (p >= end) break;
        if (phase == P_EVENTS_NEXT) {
            if (*p != ',') {
                if (*p != ']') s = DECLINE; /* neither another event nor the array's end */
                break;
            }
            p++;
            phase = P_EVENT;
            continue;
        }
        if (phase == P_EVENTS_FIRST && *p == ']') break;
        const char *q = p;
        s = read_event(self, &q, end, &self->batch[n]);
        if (s != OK) break;
        n++;
        p = q;
        phase = P_EVENTS_NEXT;
    }
    *pp = p;
    self->phase = phase;
    *count = n;
    return s;
}

/* Parse a batch without the GIL, then emit it. -1: a Python error; else the batch's status. */
static int scan_batch(Scanner *self, const char **pp, const char *end, Status *status) {
    Py_ssize_t n;
    Status s;
    set_nogil(self, 1);
    Py_BEGIN_ALLOW_THREADS
    s = parse_batch(self, pp, end, &n);
    Py_END_ALLOW_THREADS
    set_nogil(self, 0);
    for (Py_ssize_t i = 0; i < n; i++) {
        Status emitted;
        if (emit(self, &self->batch[i], &emitted) < 0) return -1;
        if (emitted != OK) {
            *status = DECLINE;
            return 0;
        }
    }
    self->gil_next = s == GIL || s == DECLINE; /* read again, holding the GIL (a decline then says why) */
    *status = s == MORE ? MORE : OK;
    return 0;
}

/* One event read and emitted holding the GIL (one that needs it, or one to decline). -1: a Python error. */
static int read_one_event(Scanner *self, const char **pp, const char *end, Status *status) {
    Event ev;
    const char *q = *pp;
    if ((*status = read_event(self, &q, end, &ev)) != OK) return 0;
    self->gil_next = 0;
    if (emit(self, &ev, status) < 0) return -1;
    if (*status == OK) {
        *pp = q;
        self->phase = P_EVENTS_NEXT;
    }
    return 0;
}

/* The document from *pp on, whole items only: the rest waits for more text. -1: a Python error. */
static int scan_document(Scanner *self, const char **pp, const char *end, Status *status, const char **why) {
    const char *p = *pp;
    Status s = OK;
    while (s == OK) {
        p = skip_ws(p, end);
        if (p >= end) break;
        switch (self->phase) {
            case P_START:
                if (*p == '{') self->phase = P_TOP_FIRST;
                else if (*p == '[') self->phase = P_EVENTS_FIRST, self->bare = 1;
                else s = DECLINE, *why = "not an object or array";
                p++;
                break;
            case P_TOP_FIRST:
            case P_TOP_NEXT:
                if (*p == '}') {
                    self->phase = P_END;
                    p++;
                } else if (self->phase == P_TOP_NEXT) {
                    if (*p == ',') self->phase = P_TOP_MEMBER, p++;
                    else s = DECLINE;
                } else {
                    s = read_member(self, &p, end);
                }
                break;
            case P_TOP_MEMBER:
                s = read_member(self, &p, end);
                break;
            case P_EVENTS_FIRST:
            case P_EVENTS_NEXT:
            case P_EVENT:
                if (self->phase != P_EVENT && *p == ']') {
                    self->phase = self->bare ? P_END : P_TOP_NEXT;
                    p++;
                } else if (!self->gil_next) {
                    if (scan_batch(self, &p, end, &s) < 0) return -1;
                } else if (self->phase == P_EVENTS_NEXT) {
                    if (*p == ',') self->phase = P_EVENT, p++;
                    else s = DECLINE;
                } else if (read_one_event(self, &p, end, &s) < 0) {
                    return -1;
                }
                if (s == DECLINE) *why = "an event the scanner or the Python reader does not take";
                break;
            case P_END:
                s = DECLINE, *why = "data after the document";
                break;
        }
    }
    *pp = p;
    *status = s;
    return 0;
}

static PyObject *Scanner_feed(Scanner *self, PyObject *arg) {
    Py_buffer view;
    if (self->batch == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the Scanner was not initialized");
        return NULL;
    }
    if (self->busy) { /* it parses without the GIL: another thread must not feed it meanwhile */
        PyErr_SetString(PyExc_RuntimeError, "the Scanner is already reading in another thread");
        return NULL;
    }
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    self->busy = 1;
    const char *base = view.buf, *p = base;
    const char *why = "invalid or unusual JSON";
    Status s;
    int failed = scan_document(self, &p, base + view.len, &s, &why);
    Py_ssize_t used = p - base;
    PyBuffer_Release(&view);
    self->busy = 0;
    if (failed) return NULL;
    if (s == DECLINE) return decline(why, used);
    return PyLong_FromSsize_t(used);
}

static PyObject *Scanner_finish(Scanner *self, PyObject *Py_UNUSED(ignored)) {
    if (self->phase != P_END) return decline("the document is incomplete", 0);
    if (!self->bare && !(self->seen_top & 1)) return decline("no traceEvents member", 0);
    Py_RETURN_NONE;
}

static PyObject *get_raw(PyObject *value) {
    if (value == NULL) Py_RETURN_NONE;
    Py_INCREF(value);
    return value;
}

static PyObject *Scanner_get_device_properties(Scanner *self, void *Py_UNUSED(closure)) {
    return get_raw(self->device_properties);
}

static PyObject *Scanner_get_distributed_info(Scanner *self, void *Py_UNUSED(closure)) {
    return get_raw(self->distributed_info);
}

static int fetch(PyObject *trace, const char *attr, PyObject **out, PyTypeObject *type) {
    *out = PyObject_GetAttrString(trace, attr);
    if (*out == NULL) return -1;
    if (Py_TYPE(*out) != type) {
        PyErr_Format(PyExc_TypeError, "Trace.%s is not a %s", attr, type->tp_name);
        return -1;
    }
    return 0;
}

static int Scanner_init(Scanner *self, PyObject *args, PyObject *kwds) {
    static char *keywords[] = {"trace", "scale", "device_op", "api_call", "kinds", "api_kind", "flop_names", NULL};
    PyObject *trace, *device_op, *api_call, *kinds, *api_kind, *flop_names;
    double scale;
    if (self->device_ops != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "a Scanner is initialized once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OdO!O!O!OO!", keywords, &trace, &scale, &PyType_Type, &device_op,
                                     &PyType_Type, &api_call, &PyTuple_Type, &kinds, &api_kind, &PyFrozenSet_Type,
                                     &flop_names))
        return -1;
    if (PyTuple_GET_SIZE(kinds) != 3) {
        PyErr_SetString(PyExc_ValueError, "kinds: (KERNEL, MEMCPY, MEMSET)");
        return -1;
    }
    PyTypeObject *dt = (PyTypeObject *)device_op, *at = (PyTypeObject *)api_call;
    if (!PyType_IsSubtype(dt, &PyTuple_Type) || !PyType_IsSubtype(at, &PyTuple_Type) || dt->tp_dictoffset ||
        at->tp_dictoffset) {
        PyErr_SetString(PyExc_TypeError, "device_op and api_call must be NamedTuple classes");
        return -1;
    }
    if (fetch(trace, "device_ops", &self->device_ops, &PyList_Type) < 0 ||
        fetch(trace, "host", &self->host, &PyList_Type) < 0 || fetch(trace, "syncs", &self->syncs, &PyList_Type) < 0 ||
        fetch(trace, "ops", &self->ops, &PyList_Type) < 0 ||
        fetch(trace, "op_names", &self->op_names, &PyList_Type) < 0 ||
        fetch(trace, "api_calls", &self->api_calls, &PyDict_Type) < 0 ||
        fetch(trace, "allocations", &self->allocations, &PyList_Type) < 0 ||
        fetch(trace, "frees", &self->frees, &PyList_Type) < 0 ||
        fetch(trace, "step_spans", &self->step_spans, &PyList_Type) < 0)
        return -1;
    if ((self->step_names = PySet_New(NULL)) == NULL || (self->flop_candidates = PyList_New(0)) == NULL) return -1;
    Py_INCREF(dt);
    Py_INCREF(at);
    self->device_op_type = dt;
    self->api_call_type = at;
    for (int i = 0; i < 3; i++) {
        self->kinds[i] = PyTuple_GET_ITEM(kinds, i);
        Py_INCREF(self->kinds[i]);
    }
    Py_INCREF(api_kind);
    Py_INCREF(flop_names);
    self->api_kind = api_kind;
    self->flop_names = flop_names;
    self->scale = scale;
    self->phase = P_START;
    self->batch = PyMem_RawMalloc(BATCH * sizeof(Event));
    if (self->batch == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void Scanner_dealloc(Scanner *self) {
    PyObject **refs[] = {&self->device_ops, &self->host, &self->syncs, &self->ops, &self->op_names,
                         &self->api_calls, &self->allocations, &self->frees, &self->step_spans,
                         &self->step_names, &self->flop_candidates, &self->api_kind, &self->flop_names,
                         &self->device_properties, &self->distributed_info, &self->kinds[0], &self->kinds[1],
                         &self->kinds[2]};
    for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++) Py_CLEAR(*refs[i]);
    Py_CLEAR(self->device_op_type);
    Py_CLEAR(self->api_call_type);
    names_clear(&self->names);
    PyMem_RawFree(self->batch);
    for (int i = 0; i < 4; i++) PyMem_Free(self->scratch[i].data);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Scanner_get_step_names(Scanner *self, void *Py_UNUSED(closure)) { return get_raw(self->step_names); }

static PyObject *Scanner_get_flop_candidates(Scanner *self, void *Py_UNUSED(closure)) {
    return get_raw(self->flop_candidates);
}

static PyMethodDef Scanner_methods[] = {
    {"feed", (PyCFunction)Scanner_feed, METH_O,
     "feed(buffer) -> bytes used: read the whole events and members in buffer; pass the rest again with more."},
    {"finish", (PyCFunction)Scanner_finish, METH_NOARGS, "finish(): the document must be complete."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Scanner_getset[] = {
    {"device_properties", (getter)Scanner_get_device_properties, NULL, "the deviceProperties JSON, or None", NULL},
    {"distributed_info", (getter)Scanner_get_distributed_info, NULL, "the distributedInfo JSON, or None", NULL},
    {"step_names", (getter)Scanner_get_step_names, NULL, "the ProfilerStep# names seen", NULL},
    {"flop_candidates", (getter)Scanner_get_flop_candidates, NULL,
     "(operator name, then the JSON of its args' flops, Input Dims, Input type and Concrete Inputs, each None "
     "where absent) for the operators whose FLOPs may count, in order",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pytest_gpuperf.analysis._scan.Scanner",
    .tp_basicsize = sizeof(Scanner),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Scanner(trace, scale, device_op, api_call, kinds, api_kind, flop_names): fills trace from JSON chunks.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Scanner_init,
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_methods = Scanner_methods,
    .tp_getset = Scanner_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_scan", "The native Chrome/Kineto trace scanner (see native.py).", -1, NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__scan(void) {
    init_tables();
    if (PyType_Ready(&ScannerType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Declined = PyErr_NewExceptionWithDoc("pytest_gpuperf.analysis._scan.Declined",
                                         "The scanner does not read this document: read it the Python way.",
                                         PyExc_Exception, NULL);
    if (Declined == NULL || PyModule_AddObjectRef(m, "Declined", Declined) < 0 ||
        PyModule_AddObjectRef(m, "Scanner", (PyObject *)&ScannerType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
