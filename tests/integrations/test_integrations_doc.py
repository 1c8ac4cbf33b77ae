"""docs/integrations.md, beyond running its blocks (tests/test_docs.py runs or parse-checks them
all).

The verl commands need a GPU, so they are checked as far as a CPU can: their Hydra overrides
compose with verl 0.9.1's own ``ppo_trainer.yaml`` and give valid PKPO options. The
advantage-scale table must be exactly what ``benchmarks/advantage_scale.py`` prints.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from pkpo.integrations import verl as plugin

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "integrations.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)
LANGUAGES = {"python": "python", "bash": "bash", "sh": "bash", "shell": "bash"}


def _blocks():
    """(line, language, code) of every Python / shell block of the page."""
    text = DOC.read_text()
    blocks = []
    for match in FENCE.finditer(text):
        language = LANGUAGES.get(match.group(1))
        if language is None:
            continue
        line = text.count("\n", 0, match.start()) + 1
        blocks.append((line, language, match.group(2)))
    return blocks


BLOCKS = _blocks()


def test_scale_table_in_the_docs_is_what_the_benchmark_prints():
    path = ROOT / "benchmarks" / "advantage_scale.py"
    spec = importlib.util.spec_from_file_location("advantage_scale", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    table = module.table()
    assert len(table.splitlines()) == 2 + 3 * (4 + 5 + 5) + (4 + 5 + 5)  # header + all (n, k) rows
    assert table in DOC.read_text(), "docs/integrations.md: rerun benchmarks/advantage_scale.py"


def _verl_overrides(code: str) -> list[str]:
    """The Hydra overrides of a ``python3 -m verl.trainer.main_ppo ...`` block, as bash passes
    them."""
    words = shlex.split(code.replace("\\\n", " "), comments=True)
    start = words.index("verl.trainer.main_ppo") + 1
    return [word for word in words[start:] if "=" in word]


VERL_BLOCKS = [(line, code) for line, _, code in BLOCKS if "verl.trainer.main_ppo" in code]


@pytest.mark.parametrize("line, code", VERL_BLOCKS, ids=[f"line{line}" for line, _ in VERL_BLOCKS])
def test_verl_commands_compose_with_verls_config(line, code):
    import verl.trainer.config
    from hydra import compose, initialize_config_dir

    overrides = _verl_overrides(code)
    config_dir = os.path.dirname(verl.trainer.config.__file__)
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        config = compose(config_name="ppo_trainer", overrides=overrides)
    assert config.algorithm.adv_estimator == "pkpo"
    options = plugin.read_options(config.algorithm)  # raises on a bad PKPO option
    assert options.scale == "mean_abs"
    if "val_ks" in config.algorithm.pkpo:
        assert config.trainer.v1.trainer_mode == "pkpo_sync"
        assert plugin.read_val_ks(config) == (1, 4, 8)
        assert config.actor_rollout_ref.rollout.val_kwargs.temperature > 0
    if options.schedule.kind != "constant":
        assert config.trainer.v1.trainer_mode == "pkpo_sync"


def test_verl_command_parser_sees_what_bash_passes():
    """The override extraction above against bash itself (a stub python3 records its argv)."""
    (_, code) = VERL_BLOCKS[-1]
    result = subprocess.run(
        ["bash", "-c", 'python3() { printf "%s\\n" "$@" | tail -n +3; }\n' + code],
        text=True,
        capture_output=True,
        check=False,
    )
    passed = [word for word in result.stdout.splitlines() if "=" in word]
    assert passed == _verl_overrides(code), json.dumps(passed)


def _tables():
    """Every markdown table of the page: a list of rows, each a list of cells."""
    tables, current = [], []
    for line in DOC.read_text().splitlines() + [""]:
        if line.startswith("|"):
            cells = re.split(r"(?<!\\)\|", line.strip()[1:-1])  # a \| inside a cell is no border
            current.append([cell.strip() for cell in cells])
        elif current:
            tables.append(current)
            current = []
    return tables


def test_every_table_row_has_the_headers_number_of_cells():
    for table in _tables():
        header = table[0]
        for row in table[2:]:
            assert len(row) == len(header), (
                f"{row[0]!r}: {len(row)} cells under {len(header)} headers"
            )


def test_the_trl_snippet_writes_into_a_temporary_folder_not_the_working_directory():
    (code,) = [
        code for _, language, code in BLOCKS if language == "python" and "PKPOGRPOTrainer(" in code
    ]
    assert "tempfile.mkdtemp(" in code
    assert not re.search(r"""(output_dir=|build_tiny_model\()\s*["']""", code), (
        "a relative output path"
    )


def test_the_verl_method_and_params_overrides_of_the_options_table_compose():
    import verl.trainer.config
    from hydra import compose, initialize_config_dir

    (row,) = [
        row for table in _tables() for row in table if row[0] == "verl" and "method=" in row[1]
    ]
    method, params = (shlex.split(cell.strip("`"))[0] for cell in row[1:3])
    config_dir = os.path.dirname(verl.trainer.config.__file__)
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        chosen = compose(
            config_name="ppo_trainer", overrides=["algorithm.adv_estimator=pkpo", method]
        )
        with_params = compose(
            config_name="ppo_trainer",
            overrides=["algorithm.adv_estimator=pkpo", "+algorithm.pkpo.method=rs_grpo", params],
        )
    assert plugin.read_options(chosen.algorithm).method == "maxrl"
    assert plugin.read_options(with_params.algorithm).params == (("beta", 2.0),)
