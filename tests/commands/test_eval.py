"""`pkpo eval`: printed and written numbers against direct formulas, and every error path."""

from __future__ import annotations

import doctest
import gzip
import io
import itertools
import json
import math
import re
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pkpo.metrics
from pkpo.cli import main as pkpo_main
from pkpo.commands import eval as eval_command
from pkpo.commands import readers
from pkpo.commands.readers import read_graded

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "samples.jsonl"


def pass_at_k_comb(n: int, c: int, k: int) -> float:
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def maxg_at_k_brute(rewards, k: int) -> float:
    subsets = list(itertools.combinations(rewards, k))
    return sum(max(s) for s in subsets) / len(subsets)


def write_lines(path: Path, records) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def binary_tasks(seed=0, tasks=10, low=4, high=8):
    """Ragged {task_id: [bool, ...]} with varied success rates."""
    rng = np.random.default_rng(seed)
    return {
        f"T/{t}": (rng.random(int(rng.integers(low, high + 1))) < rng.random()).tolist()
        for t in range(tasks)
    }


def shuffled_records(tasks: dict, field: str, seed=0):
    records = [
        {"task_id": t, field: v, "completion": "..."} for t, values in tasks.items() for v in values
    ]
    order = np.random.default_rng(seed).permutation(len(records))
    return [records[i] for i in order]


def table_rows(stdout: str) -> dict[int, list[str]]:
    """{k: cells} from the printed markdown table."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if cells and cells[0].isdigit():
            rows[int(cells[0])] = cells
    return rows


def run_eval(args, capsys):
    code = pkpo_main(["eval", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


# --- numbers -------------------------------------------------------------------------------------


def test_pass_at_k_table_and_json_match_math_comb(tmp_path, capsys):
    tasks = binary_tasks()
    path = write_lines(tmp_path / "s.jsonl", shuffled_records(tasks, "passed"))
    code, out, err = run_eval([path, "--k", "4,1,2", "--json", tmp_path / "r.json"], capsys)
    assert code == 0 and err == ""
    rows = table_rows(out)
    assert sorted(rows) == [1, 2, 4]
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["reports"][0]["metric"] == "pass@k" and data["input"]["n_tasks"] == 10
    assert data["input"]["n_samples"] == sum(len(v) for v in tasks.values())
    for k, json_row in zip([1, 2, 4], data["reports"][0]["rows"]):
        per_task = [pass_at_k_comb(len(v), sum(v), k) for v in tasks.values()]
        mean = statistics.fmean(per_task)
        se = statistics.stdev(per_task) / math.sqrt(len(per_task))
        assert float(rows[k][1]) == pytest.approx(mean, abs=5e-5)
        assert float(rows[k][2]) == pytest.approx(se, abs=5e-5)
        assert rows[k][4] == "10"
        assert json_row["k"] == k
        assert json_row["estimate"] == pytest.approx(mean, abs=1e-12)
        assert json_row["se"] == pytest.approx(se, abs=1e-12)
        low, high = (float(x) for x in rows[k][3].strip("[]").split(","))
        assert low == pytest.approx(json_row["ci_low"], abs=5e-5)
        assert high == pytest.approx(json_row["ci_high"], abs=5e-5)
        assert min(per_task) <= json_row["ci_low"] <= mean <= json_row["ci_high"] <= max(per_task)


def test_reward_file_gives_maxg_at_k(tmp_path, capsys):
    rng = np.random.default_rng(1)
    tasks = {
        t: np.round(rng.normal(size=int(rng.integers(3, 7))), 3).tolist() for t in range(6)
    }  # int ids
    path = write_lines(tmp_path / "r.jsonl", shuffled_records(tasks, "reward"))
    code, out, _ = run_eval([path, "--k", "1,3", "--json", tmp_path / "r.json"], capsys)
    assert code == 0
    assert "maxg@k" in out
    data = json.loads((tmp_path / "r.json").read_text())
    for json_row in data["reports"][0]["rows"]:
        k = json_row["k"]
        expected = statistics.fmean(maxg_at_k_brute(v, k) for v in tasks.values())
        assert json_row["estimate"] == pytest.approx(expected, abs=1e-12)
        assert float(table_rows(out)[k][1]) == pytest.approx(expected, abs=5e-5)


def test_options_change_the_interval_as_documented(tmp_path, capsys):
    path = write_lines(
        tmp_path / "s.jsonl", shuffled_records(binary_tasks(seed=2, tasks=30), "passed")
    )
    outs = {}
    for name, extra in {
        "base": [],
        "same": ["--seed", "0", "--bootstrap", "1000"],
        "seed": ["--seed", "9"],
        "conf": ["--confidence", "0.5"],
        "none": ["--bootstrap", "0"],
    }.items():
        code, out, _ = run_eval([path, "--k", "2", *extra], capsys)
        assert code == 0
        outs[name] = table_rows(out)[2]
    assert outs["same"] == outs["base"]
    assert outs["seed"][1:3] == outs["base"][1:3] and outs["seed"][3] != outs["base"][3]
    low50, high50 = (float(x) for x in outs["conf"][3].strip("[]").split(","))
    low95, high95 = (float(x) for x in outs["base"][3].strip("[]").split(","))
    assert low95 < low50 < high50 < high95
    # --bootstrap 0: no CI column, the tasks column follows the SE
    assert outs["none"][3] == "30" and "CI" not in "".join(outs["none"])


def test_stdin_and_gzip_give_the_same_numbers_as_a_file(tmp_path, capsys, monkeypatch):
    records = shuffled_records(binary_tasks(seed=3), "passed")
    path = write_lines(tmp_path / "s.jsonl", records)
    with gzip.open(tmp_path / "s.jsonl.gz", "wt") as handle:
        handle.write(path.read_text())
    _, from_file, _ = run_eval([path, "--k", "1,4"], capsys)
    _, from_gzip, _ = run_eval([tmp_path / "s.jsonl.gz", "--k", "1,4"], capsys)
    monkeypatch.setattr(sys, "stdin", io.StringIO(path.read_text()))
    code, from_stdin, _ = run_eval(["-", "--k", "1,4"], capsys)
    assert code == 0
    assert table_rows(from_file) == table_rows(from_gzip) == table_rows(from_stdin)
    assert "<stdin>" in from_stdin


def test_skip_insufficient(tmp_path, capsys):
    tasks = {"a": [True, False, False, True], "b": [False, True], "c": [False] * 4}
    path = write_lines(tmp_path / "s.jsonl", shuffled_records(tasks, "passed"))
    code, out, _ = run_eval([path, "--k", "1,3", "--skip-insufficient"], capsys)
    assert code == 0
    rows = table_rows(out)
    assert rows[1][4:] == ["3", "0"] and rows[3][4:] == ["2", "1"]
    expected = (pass_at_k_comb(4, 2, 3) + 0.0) / 2
    assert float(rows[3][1]) == pytest.approx(expected, abs=5e-5)


def test_plot_writes_a_png(tmp_path, capsys):
    path = write_lines(tmp_path / "s.jsonl", shuffled_records(binary_tasks(seed=4), "passed"))
    code, out, _ = run_eval([path, "--k", "1,2,4", "--plot", tmp_path / "p.png"], capsys)
    assert code == 0 and "wrote" in out
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_help_exits_zero(capsys):
    code, out, _ = run_eval(["--help"], capsys)
    assert code == 0 and "--skip-insufficient" in out


def test_read_graded_groups_by_task_in_first_seen_order():
    lines = [
        '{"task_id": "b", "passed": 1}',
        "",
        '{"task_id": "x", "passed": false}',
        '{"task_id": "b", "passed": 0.0}',
    ]
    tasks = read_graded(io.BytesIO("\n".join(lines).encode()))
    assert tasks.task_ids == ["b", "x"] and tasks.n_lines == 3
    assert tasks.n.tolist() == [2, 1] and tasks.passed.tolist() == [1, 0]


def test_subprocess_on_the_example_file(tmp_path):
    example = REPO / "examples" / "samples.jsonl"
    tasks: dict = {}
    for line in example.read_text().splitlines():
        record = json.loads(line)
        tasks.setdefault(record["task_id"], []).append(bool(record["passed"]))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pkpo.cli",
            "eval",
            str(example),
            "--k",
            "1,4,16",
            "--json",
            str(tmp_path / "e.json"),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rows = table_rows(result.stdout)
    assert sorted(rows) == [1, 4, 16]
    for k in (1, 4, 16):
        per_task = [pass_at_k_comb(len(v), sum(v), k) for v in tasks.values()]
        assert float(rows[k][1]) == pytest.approx(statistics.fmean(per_task), abs=5e-5)
        assert float(rows[k][2]) == pytest.approx(
            statistics.stdev(per_task) / math.sqrt(len(tasks)), abs=5e-5
        )
        assert rows[k][4] == str(len(tasks))
    assert json.loads((tmp_path / "e.json").read_text())["input"]["n_tasks"] == len(tasks)


def test_eval_imports_neither_torch_nor_jax_nor_matplotlib_without_plot():
    code = (
        "import sys, pkpo.cli; "
        f"assert pkpo.cli.main(['eval', {str(EXAMPLE)!r}, '--k', '2']) == 0; "
        "print(sorted(m for m in ('torch', 'jax', 'matplotlib') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_doctests():
    result = doctest.testmod(readers)
    assert result.attempted > 0 and result.failed == 0


def test_subprocess_error_is_one_line_with_exit_code_2(tmp_path):
    path = write_lines(tmp_path / "bad.jsonl", ['{"task_id": "a", "passed": true}', "{oops"])
    result = subprocess.run(
        [sys.executable, "-m", "pkpo.cli", "eval", str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "line 2: invalid JSON" in result.stderr


# --- errors --------------------------------------------------------------------------------------

GOOD = '{"task_id": "a", "passed": true}'


@pytest.mark.parametrize(
    "lines, match",
    [
        ([GOOD, "{oops"], "line 2: invalid JSON"),
        ([GOOD, "", "[1, 2]"], "line 3: expected a JSON object, got list"),
        ([GOOD, '{"passed": true}'], "line 2: missing 'task_id'"),
        (
            [GOOD, '{"task_id": null, "passed": true}'],
            "line 2: task_id must be a string or an integer",
        ),
        (
            [GOOD, '{"task_id": true, "passed": true}'],
            "line 2: task_id must be a string or an integer",
        ),
        ([GOOD, '{"task_id": "a"}'], "line 2: missing 'passed' \\(for pass@k\\) or 'reward'"),
        (
            [GOOD, '{"task_id": "a", "passed": "yes"}'],
            "line 2: 'passed' must be true/false or 0/1; got \"yes\"",
        ),
        (
            [GOOD, '{"task_id": "a", "passed": 2}'],
            "line 2: 'passed' must be true/false or 0/1; got 2",
        ),
        (
            [GOOD, '{"task_id": "a", "passed": null}'],
            "line 2: 'passed' must be true/false or 0/1; got null",
        ),
        (
            [GOOD, '{"task_id": "a", "passed": NaN}'],
            "line 2: 'passed' must be true/false or 0/1; got NaN",
        ),
        (
            ['{"task_id": "a", "reward": 0.5}', '{"task_id": "a", "reward": "0.5"}'],
            "line 2: 'reward' must be a number",
        ),
        (
            ['{"task_id": "a", "reward": 0.5}', '{"task_id": "a", "reward": true}'],
            "line 2: 'reward' must be a number",
        ),
        (
            ['{"task_id": "a", "reward": 0.5}', '{"task_id": "b", "reward": NaN}'],
            "line 2: 'reward' is NaN",
        ),
        (
            ['{"task_id": "a", "reward": 0.5}', '{"task_id": "b", "reward": -Infinity}'],
            "line 2: 'reward' is infinite",
        ),
        (
            [GOOD, "", '{"task_id": "b", "reward": 0.5}'],
            "line 3: has 'reward' but line 1 has 'passed'",
        ),
        (
            [GOOD, '{"task_id": "b", "passed": 1, "reward": 0.5}'],
            "line 2: has both 'passed' and 'reward'",
        ),
        (["", "  "], "contains no samples"),
        (
            [GOOD, GOOD, '{"task_id": "HumanEval/3", "passed": 0}'],
            "task 'HumanEval/3' has 1 sample, fewer than k=2",
        ),
    ],
)
def test_bad_lines_are_one_line_errors_with_exit_code_2(tmp_path, capsys, lines, match):
    path = write_lines(tmp_path / "s.jsonl", lines)
    code, out, err = run_eval([path, "--k", "1,2"], capsys)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("pkpo eval: error: ")
    assert "Traceback" not in err
    assert re.search(match, err), err


@pytest.mark.parametrize(
    "args, match",
    [
        (["--k", "0"], "argument --k: expected positive integers separated by commas"),
        (["--k", "1,x"], "argument --k: expected positive integers separated by commas"),
        (["--k", ""], "argument --k: expected positive integers separated by commas"),
        (["--bootstrap", "-5"], "argument --bootstrap: expected an integer >= 0; got -5"),
        (["--seed", "1.5"], "argument --seed: expected an integer >= 0; got '1.5'"),
        (["--evalplus-tests", "extra"], "argument --evalplus-tests: invalid choice"),
        (["--confidence", "95"], "strictly between 0 and 1"),
        (["--k", "8"], "task 'a' has 2 samples, fewer than k=8; use --skip-insufficient"),
        (
            ["--k", "8", "--skip-insufficient"],
            "no task has at least k=8 samples \\(the largest has 2\\)",
        ),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["--json", "{dir}"], "is a folder; give a file name"),
    ],
)
def test_bad_options_are_one_line_errors_with_exit_code_2(tmp_path, capsys, args, match):
    path = write_lines(tmp_path / "s.jsonl", [GOOD, GOOD, '{"task_id": "b", "passed": 0}'])
    args = [a.replace("{dir}", str(tmp_path)) for a in args]
    code, _, err = run_eval([path, *args], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("pkpo eval: error: ")
    assert re.search(match, err), err


@pytest.mark.parametrize("name", ["missing.jsonl", "bad.jsonl.gz", "latin1.jsonl", "a_dir"])
def test_unreadable_files_are_one_line_errors(tmp_path, capsys, name):
    (tmp_path / "bad.jsonl.gz").write_bytes(b"\x1f\x8b but not gzip at all")
    (tmp_path / "latin1.jsonl").write_bytes(b'{"task_id": "\xe9", "passed": 1}\n')
    (tmp_path / "a_dir").mkdir()
    code, _, err = run_eval([tmp_path / name], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert {
        "missing.jsonl": "no such file",
        "bad.jsonl.gz": "not a readable gzip",
        "latin1.jsonl": "not UTF-8",
        "a_dir": "not a file",
    }[name] in err


# --- formats: gzip by content, BOM, EvalPlus, lm-evaluation-harness ----------------------------


def test_gzip_is_recognised_by_content_also_on_stdin(tmp_path, capsys, monkeypatch):
    records = shuffled_records(binary_tasks(seed=5), "passed")
    plain = write_lines(tmp_path / "s.jsonl", records)
    packed = gzip.compress(plain.read_bytes())
    (tmp_path / "packed.jsonl").write_bytes(packed)  # gzip without the .gz suffix
    (tmp_path / "plain.jsonl.gz").write_bytes(plain.read_bytes())  # .gz suffix, plain text
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(packed)))
    _, from_stdin, err = run_eval(["-", "--k", "1,2"], capsys)
    assert err == ""
    _, from_packed, _ = run_eval([tmp_path / "packed.jsonl", "--k", "1,2"], capsys)
    _, from_plain_gz, _ = run_eval([tmp_path / "plain.jsonl.gz", "--k", "1,2"], capsys)
    _, from_plain, _ = run_eval([plain, "--k", "1,2"], capsys)
    assert (
        table_rows(from_stdin)
        == table_rows(from_packed)
        == table_rows(from_plain_gz)
        == table_rows(from_plain)
    )


def test_a_utf8_byte_order_mark_is_accepted(tmp_path, capsys):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf"
        + b'{"task_id": "\xc3\xa9", "passed": true}\n{"task_id": "b", "passed": 0}\n'
    )
    code, out, err = run_eval([path, "--k", "1"], capsys)
    assert code == 0 and err == "" and "2 tasks" in out


def evalplus_results(tasks: dict, base_only=False) -> dict:
    """EvalPlus (v0.2.1 and later) results, written as evalplus/evaluate.py writes them:
    {task_id: [(base_status, plus_status), ...]} -> {"date", "hash", "eval": {...}, "pass_at_k"}."""
    return {
        "date": "2025-01-01 00:00",
        "hash": "0123abcd",
        "eval": {
            task_id: [
                {
                    "task_id": task_id,
                    "solution": "def f(): pass",
                    "base_status": base,
                    "plus_status": None if base_only else plus,
                    "base_fail_tests": [],
                    "plus_fail_tests": [],
                }
                for base, plus in results
            ]
            for task_id, results in tasks.items()
        },
        "pass_at_k": {"base": {"pass@1": 0.5}},
    }


EVALPLUS_TASKS = {
    "HumanEval/0": [("pass", "pass"), ("pass", "fail"), ("fail", "fail"), ("pass", "timeout")],
    "HumanEval/1": [("fail", "fail"), ("fail", None), ("timeout", "fail"), ("pass", "pass")],
    "HumanEval/2": [("pass", "pass"), ("pass", "pass"), ("pass", "fail"), ("pass", "pass")],
}


@pytest.mark.parametrize(
    "tests, passed",
    [
        ("plus", [[1, 0, 0, 0], [0, 0, 0, 1], [1, 1, 0, 1]]),  # EvalPlus: base == plus == "pass"
        ("base", [[1, 1, 0, 1], [0, 0, 0, 1], [1, 1, 1, 1]]),
    ],
)
def test_evalplus_results_json(tmp_path, capsys, tests, passed):
    path = tmp_path / "samples_eval_results.json"
    path.write_text(json.dumps(evalplus_results(EVALPLUS_TASKS)))  # one line, as EvalPlus writes it
    args = [path, "--k", "1,2", "--json", tmp_path / "r.json"] + (
        ["--evalplus-tests", tests] if tests == "base" else []
    )
    code, out, err = run_eval(args, capsys)
    assert code == 0, err
    assert (
        f"EvalPlus, passed = {'base and plus tests pass' if tests == 'plus' else 'base tests pass'}"
        in out
    )
    data = json.loads((tmp_path / "r.json").read_text())
    for row in data["reports"][0]["rows"]:
        expected = statistics.fmean(pass_at_k_comb(4, sum(p), row["k"]) for p in passed)
        assert row["estimate"] == pytest.approx(expected, abs=1e-12)


def test_legacy_evalplus_results_json(tmp_path, capsys):
    # v0.1 / v0.2.0: {"eval": {task: {"nfiles"|"files", "base": [[status, details]], "plus":
    # [...]}}}
    legacy = {
        "eval": {
            "HumanEval/0": {
                "files": ["0.py", "1.py"],
                "base": [["success", []], ["failed", []]],
                "plus": [["failed", []], ["failed", []]],
            },
            "HumanEval/1": {
                "nfiles": 2,
                "base": [["success", []], ["success", []]],
                "plus": [["success", []], ["timed out", []]],
            },
        }
    }
    path = tmp_path / "eval_results.json"
    path.write_text(json.dumps(legacy, indent=2))
    _, out, _ = run_eval([path, "--k", "1", "--evalplus-tests", "base"], capsys)
    assert float(table_rows(out)[1][1]) == pytest.approx((0.5 + 1.0) / 2)
    _, out, _ = run_eval([path, "--k", "1"], capsys)
    assert float(table_rows(out)[1][1]) == pytest.approx((0.0 + 0.5) / 2)


def test_evalplus_status_lines_and_base_only_runs(tmp_path, capsys):
    lines = [
        {"task_id": t, "base_status": b, "plus_status": p}
        for t, results in EVALPLUS_TASKS.items()
        for b, p in results
    ]
    path = write_lines(tmp_path / "flat.jsonl", lines)
    _, out, _ = run_eval([path, "--k", "1", "--evalplus-tests", "base"], capsys)
    assert float(table_rows(out)[1][1]) == pytest.approx(
        statistics.fmean([3 / 4, 1 / 4, 1]), abs=5e-5
    )
    base_only = tmp_path / "base_only.json"
    base_only.write_text(json.dumps(evalplus_results(EVALPLUS_TASKS, base_only=True)))
    code, _, err = run_eval([base_only, "--k", "1"], capsys)
    assert (
        code == 2
        and "base_only.json has no plus-test results" in err
        and "--evalplus-tests base" in err
    )
    code, _, _ = run_eval([base_only, "--k", "1", "--evalplus-tests", "base"], capsys)
    assert code == 0


def lm_eval_line(doc_id: int, n: int, estimates: dict) -> dict:
    """One line of lm-evaluation-harness's samples_<task>_<date>.jsonl (--log_samples) for a
    pass@k task, with the fields lm_eval/evaluator.py logs and the task's pass@k estimates."""
    return {
        "doc_id": doc_id,
        "doc": {"task_id": f"HumanEval/{doc_id}", "prompt": "def f():\n"},
        "target": "check(f)",
        "arguments": {"gen_args_0": {"arg_0": "def f():\n", "arg_1": {"until": ["\nclass"]}}},
        "resps": [["    return 1"] * n],
        "filtered_resps": [["def f():\n    return 1"] * n],
        "filter": "create_test",
        "metrics": [f"pass@{k}" for k in estimates],
        "doc_hash": "a",
        "prompt_hash": "b",
        "target_hash": "c",
        **{f"pass@{k}": v for k, v in estimates.items()},
    }


def test_lm_eval_harness_samples_log(tmp_path, capsys):
    # three documents of n = 8 samples with c = 1, 4, 8 correct: lm-eval logs pass@2 and pass@8
    counts = [1, 4, 8]
    lines = [
        lm_eval_line(i, 8, {2: pass_at_k_comb(8, c, 2), 8: pass_at_k_comb(8, c, 8)})
        for i, c in enumerate(counts)
    ]
    path = write_lines(tmp_path / "samples_humaneval_64_2025.jsonl", lines)
    code, out, err = run_eval([path, "--k", "2,8", "--bootstrap", "0"], capsys)
    assert code == 0, err
    assert "lm-evaluation-harness, filter 'create_test', per-task pass@k estimates" in out
    assert "3 tasks, 8 samples each" in out
    rows = table_rows(out)
    for k in (2, 8):
        per_task = [pass_at_k_comb(8, c, k) for c in counts]
        assert float(rows[k][1]) == pytest.approx(statistics.fmean(per_task), abs=5e-5)
        assert float(rows[k][2]) == pytest.approx(
            statistics.stdev(per_task) / math.sqrt(3), abs=5e-5
        )
    code, _, err = run_eval([path, "--k", "1,2"], capsys)
    assert code == 2 and "no pass@k for k=[1]" in err and "here [2, 8]" in err
    other = write_lines(
        tmp_path / "samples_other.jsonl",
        [{**lm_eval_line(0, 1, {}), "metrics": ["bleu"], "bleu": 0.3}],
    )
    code, _, err = run_eval([other], capsys)
    assert code == 2 and "has no score pkpo eval reads (metrics: ['bleu'])" in err


@pytest.mark.parametrize(
    "document, match",
    [
        (
            {"results": {"humaneval": {"pass@1,create_test": 0.1}}, "configs": {}, "versions": {}},
            "aggregate results file; .* --log_samples",
        ),
        (
            {"task_id": "a", "passed": True, "note": "pretty-printed"},
            "one JSON document, not JSON Lines",
        ),
    ],
)
def test_whole_json_documents_are_named_for_what_they_are(tmp_path, capsys, document, match):
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(document, indent=2))
    code, _, err = run_eval([path], capsys)
    assert code == 2 and re.search(match, err), err


def test_ungraded_samples_say_so(tmp_path, capsys):
    path = write_lines(
        tmp_path / "samples.jsonl", [{"task_id": "HumanEval/0", "solution": "def f(): pass"}]
    )
    code, _, err = run_eval([path], capsys)
    assert code == 2 and "ungraded samples" in err and "evalplus.evaluate" in err


def test_plot_title_counts_the_tasks_behind_each_point():
    tasks = {f"t{i}": [True, False] * (1 if i < 7 else 2) for i in range(15)}  # 7 tasks with n = 2
    report = pkpo.metrics.pass_at_k_report(list(tasks.values()), [1, 2, 4], skip_insufficient=True)
    title = eval_command.plot_title([report], 15, "95% CI")
    assert title == "pass@k vs k (tasks per point: k=1: 15, k=2: 15, k=4: 8 of 15; bars: 95% CI)"
    full = pkpo.metrics.pass_at_k_report(list(tasks.values()), [1, 2])
    assert eval_command.plot_title([full], 15, "x") == "pass@k vs k (15 tasks; bars: x)"


def test_a_closed_pipe_ends_quietly():
    command = f"{sys.executable} -m pkpo eval {EXAMPLE} --k 1,2,4,8,16 --bootstrap 10 | head -c 10"
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert result.stdout == "pass@k fro"
    assert result.stderr == ""  # no BrokenPipeError traceback
    assert result.returncode in (0, 141)  # 141: like any tool stopped by SIGPIPE


# --- outputs: --overwrite, inputs, links, folders, plot formats
# ------------------------------------


def one_line_error(code, out, err, match):
    assert code == 2 and out == "", (code, out, err)
    assert err.startswith("pkpo eval: error: ") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert re.search(match, err), err


def test_an_existing_output_needs_overwrite(tmp_path, capsys):
    path = write_lines(tmp_path / "s.jsonl", shuffled_records(binary_tasks(), "passed"))
    out = tmp_path / "r.json"
    out.write_text("keep")
    one_line_error(*run_eval([path, "--json", out], capsys), r"r.json' exists; pass --overwrite")
    assert out.read_text() == "keep"
    code, _, _ = run_eval([path, "--json", out, "--overwrite"], capsys)
    assert code == 0 and json.loads(out.read_text())["input"]["n_tasks"] == 10


def test_an_output_that_is_the_input_is_refused_even_with_overwrite(tmp_path, capsys):
    path = write_lines(tmp_path / "s.jsonl", shuffled_records(binary_tasks(), "passed"))
    before = path.read_bytes()
    for flag, name in (("--json", path), ("--plot", path.with_suffix(".png"))):
        if flag == "--plot":
            path.with_suffix(".png").hardlink_to(path)
        one_line_error(*run_eval([path, flag, name, "--overwrite"], capsys), "is also an input")
    assert path.read_bytes() == before


def test_outputs_are_never_written_through_a_symlink(tmp_path, capsys):
    path = write_lines(tmp_path / "s.jsonl", shuffled_records(binary_tasks(), "passed"))
    precious = tmp_path / "precious.txt"
    precious.write_text("keep")
    (tmp_path / "r.json").symlink_to(precious)
    one_line_error(
        *run_eval([path, "--json", tmp_path / "r.json", "--overwrite"], capsys), "symbolic link"
    )
    assert precious.read_text() == "keep"


def test_json_into_a_missing_folder_is_refused_and_creates_nothing(tmp_path, capsys):
    path = write_lines(tmp_path / "s.jsonl", shuffled_records(binary_tasks(), "passed"))
    one_line_error(
        *run_eval([path, "--json", tmp_path / "nonexistent" / "x.json"], capsys),
        "the folder .*nonexistent' does not exist",
    )
    assert not (tmp_path / "nonexistent").exists()


@pytest.mark.parametrize(
    "name, match",
    [
        ("p.txt", r"must end in \.png, \.svg, \.pdf"),
        ("noext", r"must end in \.png, \.svg, \.pdf"),
        ("a_dir", "is a folder; give a file name"),
    ],
)
def test_bad_plot_names_are_one_line_errors_and_write_nothing(tmp_path, capsys, name, match):
    path = write_lines(tmp_path / "s.jsonl", shuffled_records(binary_tasks(), "passed"))
    (tmp_path / "a_dir").mkdir()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    one_line_error(*run_eval([path, "--k", "1,2", "--plot", tmp_path / name], capsys), match)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_the_plot_is_written_where_the_message_says_in_its_format(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = write_lines(tmp_path / "s.jsonl", shuffled_records(binary_tasks(), "passed"))
    code, out, _ = run_eval([path, "--k", "1,2", "--plot", tmp_path / "p.svg"], capsys)
    assert code == 0 and f"wrote {tmp_path / 'p.svg'}" in out
    assert b"<svg" in (tmp_path / "p.svg").read_bytes()[:400]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.svg", "s.jsonl"]


# --- streaming and hostile inputs
# --------------------------------------------------------------------


def test_memory_grows_with_tasks_not_with_bytes(tmp_path):
    """10 MB of samples of 5 tasks: the reader's peak Python allocation stays far below the file
    size (it holds one 1 MiB block and the per-task counts), where reading the whole file costs
    several times it."""
    import tracemalloc

    line = '{"task_id": "T/%d", "passed": %s, "completion": "%s"}\n'
    filler = "x" * 200
    path = tmp_path / "big.jsonl"
    with open(path, "w") as handle:
        for i in range(40_000):
            handle.write(line % (i % 5, "true" if i % 3 else "false", filler))
    size = path.stat().st_size
    assert size > 9e6
    tracemalloc.start()
    tasks = readers.read_path(str(path), readers.ReadOptions(keep_rewards=False))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert tasks.n.tolist() == [8_000] * 5 and int(tasks.passed.sum()) == 26_666
    assert peak < size / 4, (peak, size)


def test_a_gzip_of_only_newlines_is_one_line_error_not_memory_error(tmp_path, capsys):
    path = tmp_path / "bomb.jsonl.gz"
    block = b"\n" * (1 << 20)
    with gzip.open(path, "wb", compresslevel=9) as handle:
        for _ in range(64):  # 64 MiB of newlines in a file of about 64 KB
            handle.write(block)
    assert path.stat().st_size < 200_000
    one_line_error(*run_eval([path], capsys), "bomb.jsonl.gz contains no samples")


def test_a_line_longer_than_the_limit_is_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(readers._lines, "MAX_RECORD_BYTES", 1 << 16)
    path = tmp_path / "long.jsonl.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(b'{"task_id": "a", "passed": true}\n' + b"a" * (1 << 18))
    one_line_error(*run_eval([path], capsys), r"long.jsonl.gz line 2 is longer than 0 MiB")


def test_lines_split_only_on_newline_u2028_and_u0085_are_text(tmp_path, capsys):
    path = tmp_path / "s.jsonl"
    path.write_bytes(
        '{"task_id": "a", "passed": true, "completion": "x\u2028y\u0085z"}\n'
        '{"task_id": "a", "passed": false}\n'.encode("utf-8")
    )
    code, out, err = run_eval([path, "--k", "1"], capsys)
    assert code == 0, err
    assert "1 task, 2 samples each (2 samples)" in out and float(table_rows(out)[1][1]) == 0.5


@pytest.mark.parametrize(
    "lines, match",
    [
        (
            [GOOD, '{"task_id": "a", "passed": true, "x": ' + "[" * 100_000 + "]" * 100_000 + "}"],
            r"s.jsonl line 2: the JSON is nested too deeply",
        ),
        (
            ['{"task_id": "a", "reward": 0.5}', '{"task_id": "a", "reward": 1' + "0" * 400 + "}"],
            r"s.jsonl line 2: 'reward' is too large for a float",
        ),
        (
            ['{"task_id": 1, "passed": true}', '{"task_id": "1", "passed": false}'],
            r"line 2: task id '1' is a string, but line 1 has an integer id; a file must use one "
            r"type",
        ),
    ],
)
def test_hostile_lines_are_one_line_errors(tmp_path, capsys, lines, match):
    path = write_lines(tmp_path / "s.jsonl", lines)
    one_line_error(*run_eval([path], capsys), match)


def test_a_truncated_last_line_names_the_file_and_line(tmp_path, capsys):
    path = tmp_path / "s.jsonl"
    path.write_text(
        GOOD + "\n" + GOOD + "\n" + '{"task_id": "a", "completion": "def f():\\n    ret'
    )
    one_line_error(
        *run_eval([path], capsys),
        r"s.jsonl line 3: invalid JSON \(Unterminated string.*\); it is the last line and has no "
        r"newline, so the file looks truncated",
    )


def test_an_evalplus_task_with_no_results_is_an_error_naming_it(tmp_path, capsys):
    results = evalplus_results(EVALPLUS_TASKS)
    results["eval"]["HumanEval/9"] = []
    path = tmp_path / "r_eval_results.json"
    path.write_text(json.dumps(results))
    one_line_error(
        *run_eval([path], capsys), r"task 'HumanEval/9' has no results \(an empty list\)"
    )


def test_skip_insufficient_prints_the_task_counts_behind_each_k(tmp_path, capsys):
    tasks = {"a": [True] * 5, "b": [False, True, False], "c": [True, False]}
    path = write_lines(tmp_path / "s.jsonl", shuffled_records(tasks, "passed"))
    code, out, _ = run_eval(
        [path, "--k", "1,3,5", "--skip-insufficient", "--json", tmp_path / "r.json"], capsys
    )
    assert code == 0
    note = (
        "note: --skip-insufficient left out tasks with fewer than k samples, so the rows average "
        "over different tasks (k=1: 3 of 3 tasks, k=3: 2 of 3 tasks, k=5: 1 of 3 tasks); compare "
        "rows across k with care."
    )
    assert note in out.splitlines()
    assert json.loads((tmp_path / "r.json").read_text())["notes"] == [note.removeprefix("note: ")]
    code, out, _ = run_eval([path, "--k", "1,2", "--skip-insufficient"], capsys)
    assert code == 0 and "note:" not in out  # every task is used at every k


# --- verifiers, tinker-cookbook, lm-evaluation-harness per-response scores ------------------------
# Fixtures follow the writers' source: verifiers/legacy/utils/save_utils.py (state_to_output,
# save_metadata) and metric_utils.PassAtKMetric; tinker_cookbook/eval/benchmarks/_runner.py
# (_trajectory_to_stored, _compute_pass_at_k); lm_eval/evaluator.py (the logged sample) and
# lm_eval/api/task.py (process_results scores filtered_resps[0]).


def verifiers_row(example_id: int, reward: float) -> dict:
    """One line of verifiers' results.jsonl (state_to_output, metrics flattened to the top
    level)."""
    return {
        "example_id": example_id,
        "prompt": [{"role": "user", "content": f"What is {example_id} + 1?"}],
        "completion": [{"role": "assistant", "content": "<answer>2</answer>"}],
        "answer": str(example_id + 1),
        "reward": reward,
        "error": None,
        "timing": {"generation_ms": 812.0, "scoring_ms": 3.1, "total_ms": 815.1},
        "is_completed": True,
        "is_truncated": False,
        "stop_condition": "max_turns_reached",
        "metrics": {"correct_answer": reward},
        "tool_defs": None,
        "token_usage": {"input_tokens": 31.0, "output_tokens": 12.0},
        "correct_answer": reward,
    }


def verifiers_metadata(rewards: dict, threshold: float) -> dict:
    """metadata.json as verifiers writes it; pass_at_k / pass_all_k as PassAtKMetric computes them
    (k = powers of 2 up to n, correct = reward >= pass_threshold)."""
    n = len(next(iter(rewards.values())))
    ks = [2**i for i in range(n.bit_length()) if 2**i <= n]
    counts = [sum(r >= threshold for r in values) for values in rewards.values()]
    at_k = {str(k): statistics.fmean(pass_at_k_comb(n, c, k) for c in counts) for k in ks}
    all_k = {
        str(k): statistics.fmean(math.comb(c, k) / math.comb(n, k) for c in counts) for k in ks
    }
    return {
        "env_id": "vf-math",
        "model": "m",
        "num_examples": len(rewards),
        "rollouts_per_example": n,
        "avg_reward": 0.5,
        "pass_at_k": at_k,
        "pass_all_k": all_k,
        "pass_threshold": threshold,
    }


VERIFIERS_REWARDS = {
    0: [1.0, 0.0, 0.6, 1.0],
    1: [0.0, 0.3, 0.0, 0.0],
    2: [1.0, 1.0, 0.7, 0.5],
    3: [0.2, 0.0, 0.4, 0.55],
}


@pytest.mark.parametrize("threshold", [0.5, 0.65])
def test_verifiers_results_match_their_own_pass_at_k(tmp_path, capsys, threshold):
    rows = [verifiers_row(e, r) for e, values in VERIFIERS_REWARDS.items() for r in values]
    path = write_lines(
        tmp_path / "results.jsonl", [rows[i] for i in np.random.default_rng(0).permutation(16)]
    )
    metadata = verifiers_metadata(VERIFIERS_REWARDS, threshold)
    (tmp_path / "metadata.json").write_text(json.dumps(metadata))
    code, out, err = run_eval([path, "--k", "1,2,4", "--json", tmp_path / "r.json"], capsys)
    assert code == 0, err
    assert (
        f"verifiers results, passed = reward >= {threshold:g}, the pass_threshold of metadata.json"
        in out
    )
    rows_out = json.loads((tmp_path / "r.json").read_text())["reports"][0]["rows"]
    for row in rows_out:
        assert row["estimate"] == pytest.approx(metadata["pass_at_k"][str(row["k"])], abs=1e-12)


def test_verifiers_threshold_default_and_override(tmp_path, capsys):
    rows = [verifiers_row(e, r) for e, values in VERIFIERS_REWARDS.items() for r in values]
    path = write_lines(tmp_path / "results.jsonl", rows)
    code, out, _ = run_eval([path, "--k", "1"], capsys)  # no metadata.json: verifiers' default 0.5
    assert code == 0 and "passed = reward >= 0.5, verifiers' default pass_threshold" in out
    assert float(table_rows(out)[1][1]) == pytest.approx(
        statistics.fmean([3 / 4, 0, 1, 1 / 4]), abs=5e-5
    )
    code, out, _ = run_eval([path, "--k", "1", "--pass-threshold", "0.25"], capsys)
    assert "passed = reward >= 0.25, from --pass-threshold" in out
    assert float(table_rows(out)[1][1]) == pytest.approx(
        statistics.fmean([3 / 4, 1 / 4, 1, 2 / 4]), abs=5e-5
    )
    code, out, _ = run_eval([path, "--k", "1,2", "--metric", "maxg@k"], capsys)  # the raw rewards
    expected = statistics.fmean(maxg_at_k_brute(v, 2) for v in VERIFIERS_REWARDS.values())
    assert code == 0 and float(table_rows(out)[2][1]) == pytest.approx(expected, abs=5e-5)
    for bad in ('"high"', "1" + "0" * 400):  # a string; an integer too large for a float
        (tmp_path / "metadata.json").write_text('{"pass_threshold": %s}' % bad)
        one_line_error(*run_eval([path], capsys), "metadata.json has no readable 'pass_threshold'")


def tinker_trajectory(idx: int, example_id: str, reward: float, error: str | None = None) -> dict:
    """One line of tinker-cookbook's <benchmark>/trajectories.jsonl (StoredTrajectory.to_dict)."""
    turns = (
        []
        if error
        else [
            {"role": "user", "content": "Question: 2 + 2?", "token_count": 9, "metadata": {}},
            {"role": "assistant", "content": "4", "token_count": 1, "metadata": {}},
        ]
    )
    return {
        "idx": idx,
        "benchmark": "gsm8k",
        "example_id": example_id,
        "turns": turns,
        "reward": reward,
        "metrics": {"correct": reward, "_eval_turns": 1},
        "logs": {"expected": "4", "extracted": "4"},
        "error": error,
        "time_seconds": 1.5,
    }


def test_tinker_cookbook_trajectories_count_reward_above_zero(tmp_path, capsys):
    # pass@k mode: num_samples rounds, each appending one trajectory per example; an error is a
    # scored failure with reward 0
    rewards = {
        "gsm8k_3f2a": [1.0, 0.0, 1.0, 1.0, 0.0],
        "gsm8k_91bc": [0.0, 0.0, 0.0, 0.0, 0.0],
        "gsm8k_07d4": [0.5, 1.0, 1.0, 1.0, 1.0],
    }
    lines = []
    for round_ in range(5):
        for idx, (example_id, values) in enumerate(rewards.items()):
            error = "timeout (600s)" if (round_, idx) == (2, 1) else None
            lines.append(tinker_trajectory(idx, example_id, values[round_], error))
    path = write_lines(tmp_path / "trajectories.jsonl", lines)
    code, out, err = run_eval([path, "--k", "1,5"], capsys)
    assert code == 0, err
    assert "tinker-cookbook trajectories, passed = reward > 0, its runner's rule" in out
    assert "3 tasks, 5 samples each" in out
    for k in (1, 5):  # the runner's _compute_pass_at_k: c = number of rewards > 0
        expected = statistics.fmean(
            pass_at_k_comb(5, sum(r > 0 for r in v), k) for v in rewards.values()
        )
        assert float(table_rows(out)[k][1]) == pytest.approx(expected, abs=5e-5)


def lm_eval_scored_line(
    doc_id, responses: list, graded, score_name: str, score: float, filter_name: str
) -> dict:
    """A logged sample of a task scored per response (lm_eval/evaluator.py, current layout):
    ``graded`` is filtered_resps[0], a list when the filter keeps every response, one string when
    it takes the first."""
    return {
        "doc_id": doc_id,
        "doc": {"task_id": 11, "text": "Write a function ...", "test_list": ["assert f(1) == 2"]},
        "target": "assert f(1) == 2",
        "arguments": [[f"prompt {doc_id}", {"until": ["[DONE]"], "do_sample": True}]],
        "resps": [responses],
        "filtered_resps": [graded],
        "filter": filter_name,
        "metrics": [score_name],
        "doc_hash": "h1",
        "prompt_hash": "h2",
        "target_hash": "h3",
        score_name: score,
    }


def test_lm_eval_mbpp_instruct_with_repeats_gives_counts_for_every_k(tmp_path, capsys):
    # mbpp_instruct's extract_code filter keeps all 4 responses; pass_at_1 is code_eval's c / n
    counts = [0, 1, 3, 4, 2]
    lines = [
        lm_eval_scored_line(
            d,
            [f"r{i}" for i in range(4)],
            [f"code{i}" for i in range(4)],
            "pass_at_1",
            c / 4,
            "extract_code",
        )
        for d, c in enumerate(counts)
    ]
    path = write_lines(tmp_path / "samples_mbpp_instruct_2026-01-01.jsonl", lines)
    code, out, err = run_eval([path, "--k", "1,2,4"], capsys)
    assert code == 0, err
    assert "lm-evaluation-harness, filter 'extract_code', passed from 'pass_at_1'" in out
    assert "5 tasks, 4 samples each (20 samples)" in out
    for k in (1, 2, 4):
        expected = statistics.fmean(pass_at_k_comb(4, c, k) for c in counts)
        assert float(table_rows(out)[k][1]) == pytest.approx(expected, abs=5e-5)


def test_lm_eval_mbpp_scores_only_the_first_response_and_says_so(tmp_path, capsys):
    # mbpp has no filter_list: lm-eval's default take_first filter grades the first of the repeats
    lines = [
        lm_eval_scored_line(d, ["a", "b", "c"], "a", "pass_at_1", float(d % 2), "none")
        for d in range(6)
    ]
    path = write_lines(tmp_path / "samples_mbpp_2026-01-01.jsonl", lines)
    code, out, err = run_eval([path, "--k", "1"], capsys)
    assert code == 0, err
    assert "6 tasks, 1 sample each (6 samples)" in out and float(table_rows(out)[1][1]) == 0.5
    assert "note: lm-evaluation-harness graded only some of the responses of 6 documents" in out
    one_line_error(*run_eval([path, "--k", "2"], capsys), "task 0 has 1 sample, fewer than k=2")


def test_lm_eval_gsm8k_needs_one_filter(tmp_path, capsys):
    lines = []
    for d in range(4):
        for name, right in (("strict-match", d < 3), ("flexible-extract", d < 1)):
            lines.append(
                lm_eval_scored_line(
                    d, ["The answer is 72"], "72", "exact_match", float(right), name
                )
            )
    path = write_lines(tmp_path / "samples_gsm8k_2026-01-01.jsonl", lines)
    one_line_error(
        *run_eval([path], capsys),
        r"line 2 has filter 'flexible-extract' but line 1 has 'strict-match'.*--filter NAME",
    )
    for name, expected in (("strict-match", 0.75), ("flexible-extract", 0.25)):
        code, out, err = run_eval([path, "--filter", name], capsys)
        assert code == 0, err
        assert (
            f"filter '{name}', passed from 'exact_match'" in out
            and float(table_rows(out)[1][1]) == expected
        )
    one_line_error(
        *run_eval([path, "--filter", "maj@64"], capsys),
        r"has no line with filter 'maj@64' \(filters: \['flexible-extract', 'strict-match'\]\)",
    )


@pytest.mark.parametrize(
    "change, match",
    [
        ({"doc_id": [1, 2]}, r"line 1: 'doc_id' must be an integer \(or a string\); got \[1, 2\]"),
        (
            {"pass_at_1": 0.3},
            r"line 1: 'pass_at_1' = 0.3 is not a fraction of its 4 graded responses",
        ),
        ({"pass_at_1": 1.5}, r"line 1: 'pass_at_1' must be a number in \[0, 1\]; got 1.5"),
        ({"filtered_resps": []}, r"line 1: an lm-evaluation-harness sample needs 'filtered_resps'"),
    ],
)
def test_lm_eval_bad_lines_are_one_line_errors(tmp_path, capsys, change, match):
    line = {
        **lm_eval_scored_line(0, ["a"] * 4, ["a"] * 4, "pass_at_1", 0.25, "extract_code"),
        **change,
    }
    path = write_lines(tmp_path / "samples_x.jsonl", [line])
    one_line_error(*run_eval([path], capsys), match)


def test_plain_rewards_give_pass_at_k_only_with_a_threshold(tmp_path, capsys):
    tasks = {"a": [0.2, 0.9, 0.5], "b": [0.1, 0.0, 0.6]}
    path = write_lines(tmp_path / "r.jsonl", shuffled_records(tasks, "reward"))
    one_line_error(
        *run_eval([path, "--metric", "pass@k"], capsys),
        r"pass@k needs pass/fail results, and this file holds rewards: give --pass-threshold T",
    )
    code, out, _ = run_eval(
        [path, "--k", "1,2", "--pass-threshold", "0.5", "--metric", "pass@k,maxg@k"], capsys
    )
    assert code == 0 and "passed = reward >= 0.5, from --pass-threshold" in out
    tables = out.split("\n\n")
    pass_table, maxg_table = (
        next(t for t in tables if f"| {m} |" in t) for m in ("pass@k", "maxg@k")
    )
    assert out.index(pass_table) < out.index(maxg_table)  # in the order asked for
    assert float(table_rows(pass_table)[1][1]) == pytest.approx((2 / 3 + 1 / 3) / 2, abs=5e-5)
    expected = statistics.fmean(maxg_at_k_brute(v, 2) for v in tasks.values())
    assert float(table_rows(maxg_table)[2][1]) == pytest.approx(expected, abs=5e-5)
    one_line_error(*run_eval([path, "--pass-threshold", "nan"], capsys), "expected a finite number")
    one_line_error(
        *run_eval([path, "--metric", "pass@2"], capsys), "expected metrics separated by commas"
    )


# --- pass^k and Cover@tau
# ---------------------------------------------------------------------------


def test_pass_all_k_and_cover_against_direct_formulas(tmp_path, capsys):
    tasks = binary_tasks(seed=11, tasks=12, low=4, high=9)
    path = write_lines(tmp_path / "s.jsonl", shuffled_records(tasks, "passed"))
    code, out, err = run_eval(
        [
            path,
            "--k",
            "1,2,4",
            "--metric",
            "pass^k,cover@0.5,pass@k,cover@0.25",
            "--json",
            tmp_path / "r.json",
        ],
        capsys,
    )
    assert code == 0, err
    reports = json.loads((tmp_path / "r.json").read_text())["reports"]
    assert [r["metric"] for r in reports] == ["pass^k", "cover@tau", "pass@k"]  # in the order asked
    counts = [(len(v), sum(v)) for v in tasks.values()]
    for row in reports[0]["rows"]:
        per_task = [math.comb(c, row["k"]) / math.comb(n, row["k"]) for n, c in counts]
        assert row["estimate"] == pytest.approx(statistics.fmean(per_task), abs=1e-12)
        assert row["se"] == pytest.approx(statistics.stdev(per_task) / math.sqrt(12), abs=1e-12)
    assert [row["tau"] for row in reports[1]["rows"]] == [0.25, 0.5]
    for row in reports[1]["rows"]:
        covered = [float(c / n >= row["tau"]) for n, c in counts]
        assert row["estimate"] == pytest.approx(statistics.fmean(covered), abs=1e-12)
        assert row["ci_low"] <= row["estimate"] <= row["ci_high"]
    for row in reports[2]["rows"]:
        per_task = [pass_at_k_comb(n, c, row["k"]) for n, c in counts]
        assert row["estimate"] == pytest.approx(statistics.fmean(per_task), abs=1e-12)
    cover_lines = [
        [cell.strip() for cell in line.split("|")[1:3]]
        for line in out.splitlines()
        if "cover@tau |" in line or "| 0.25 |" in line
    ]
    first = f"{reports[1]['rows'][0]['estimate']:.4f}"
    assert cover_lines == [["tau", "cover@tau"], ["0.25", first]]


def test_verifiers_pass_all_k_matches_its_metadata(tmp_path, capsys):
    rows = [verifiers_row(e, r) for e, values in VERIFIERS_REWARDS.items() for r in values]
    path = write_lines(tmp_path / "results.jsonl", rows)
    metadata = verifiers_metadata(VERIFIERS_REWARDS, 0.5)
    (tmp_path / "metadata.json").write_text(json.dumps(metadata))
    code, _, err = run_eval(
        [path, "--k", "1,2,4", "--metric", "pass^k", "--json", tmp_path / "r.json"], capsys
    )
    assert code == 0, err
    for row in json.loads((tmp_path / "r.json").read_text())["reports"][0]["rows"]:
        assert row["estimate"] == pytest.approx(metadata["pass_all_k"][str(row["k"])], abs=1e-12)


@pytest.mark.parametrize(
    "args, match",
    [
        (["--metric", "cover@0"], r"cover@TAU needs 0 < TAU <= 1; got 'cover@0'"),
        (["--metric", "cover@x"], r"cover@TAU needs 0 < TAU <= 1; got 'cover@x'"),
        (
            ["--metric", "cover@0.5", "--plot", "{tmp}/c.png"],
            r"--plot draws metrics against k; cover@TAU has no k",
        ),
    ],
)
def test_metric_errors(tmp_path, capsys, args, match):
    path = write_lines(tmp_path / "s.jsonl", shuffled_records(binary_tasks(), "passed"))
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    one_line_error(*run_eval([path, *args], capsys), match)


def test_an_lm_eval_pass_at_k_log_has_no_pass_all_k(tmp_path, capsys):
    lines = [lm_eval_line(i, 8, {2: pass_at_k_comb(8, c, 2)}) for i, c in enumerate([1, 4])]
    path = write_lines(tmp_path / "samples_humaneval_64.jsonl", lines)
    one_line_error(
        *run_eval([path, "--k", "2", "--metric", "pass^k"], capsys),
        r"pass\^k needs the samples' results; this lm-evaluation-harness log holds only per-task "
        r"pass@k estimates for k in \[2\]",
    )
