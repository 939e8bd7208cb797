"""Loading the plugin is cheap: every pytest run of an environment that has it pays."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_loading_the_plugin_does_not_import_torch() -> None:
    code = (
        "import sys, pytest_gpuperf.plugin, pytest_gpuperf.cli, pytest_gpuperf.analysis.metrics;"
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_loading_the_plugin_leaves_the_measuring_stack_for_gpuperf_runs() -> None:
    """The session, the trace decoder and the YAML store load only under --gpuperf (together
    they took loading the plugin from about 20 ms to about 140 ms here)."""
    heavy = ["pytest_gpuperf.session", "pytest_gpuperf.measuring.protocol", "msgspec", "yaml"]
    code = f"import sys, pytest_gpuperf.plugin; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert done.stdout.strip() == "[]"


def test_a_pytest_run_with_the_plugin_installed_does_not_import_torch(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import sys
        import pytest

        @pytest.mark.gpu_budget(p99_ms=40)
        def test_body():
            assert "torch" not in sys.modules
        """
    )
    # --strict-markers passes only if the plugin, loaded by its entry point, declared gpu_budget.
    result = pytester.runpytest_subprocess("--strict-markers")
    result.assert_outcomes(passed=1)


def test_the_plugin_is_registered_through_its_entry_point() -> None:
    from importlib.metadata import entry_points

    assert any(ep.value == "pytest_gpuperf.plugin" for ep in entry_points(group="pytest11"))
