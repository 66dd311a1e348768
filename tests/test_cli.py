"""The one `featherface` command exposes every verb of the toolchain."""
from __future__ import annotations

from click.testing import CliRunner

from featherface_mobile.cli import main


def test_every_verb_is_a_featherface_subcommand():
    for verb in ("export", "verify", "quantize", "package", "bench", "eval", "detect", "demo", "golden", "models"):
        result = CliRunner().invoke(main, [verb, "--help"])
        assert result.exit_code == 0, f"featherface {verb} --help: {result.output}"


def test_quantize_has_report_and_qat():
    result = CliRunner().invoke(main, ["quantize", "--help"])
    assert "report" in result.output and "qat" in result.output
