"""Rendering: rows (the table's, the JSON report's and the xdist wire format), the terminal text,
the JSON file, and ``gpuperf analyze``'s text. Never imports pytest or the plugin's session."""
