"""The README's commands work as printed: every command of a ```bash offline``` block runs, in the project
root with the environment's tools first on PATH (what `source .venv/bin/activate` gives), and exits 0."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(?P<info>[^`]*)$")


def offline_blocks(text: str) -> list[list[str]]:
    """The bodies of the fenced blocks whose info string is `bash offline`."""
    blocks, body, inside, marked = [], [], False, False
    for line in text.splitlines():
        m = FENCE.match(line.strip())
        if m and not inside:
            inside, marked, body = True, m["info"].split() == ["bash", "offline"], []
        elif line.strip() == "```" and inside:
            if marked:
                blocks.append(body)
            inside = False
        elif inside:
            body.append(line)
    return blocks


def commands(block: list[str]) -> list[str]:
    """One command per logical line: comment and blank lines skipped, `\\` continuations joined."""
    out, pending = [], []
    for line in block:
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending.append(line.strip()[:-1].strip())
            continue
        out.append(" ".join([*pending, line.strip()]))
        pending = []
    if pending:
        out.append(" ".join(pending))
    return out


def test_the_parser_handles_comments_and_continuations():
    text = "x\n```bash offline\n# a comment\n\npython -m a \\\n    --b   # c\nls\n```\n```bash\nrm -rf x\n```\n"
    assert [commands(b) for b in offline_blocks(text)] == [["python -m a --b   # c", "ls"]]


def tools_bin() -> Path:
    venv = ROOT / ".venv" / "bin"
    return venv if venv.is_dir() else Path(sys.executable).parent


def test_readme_offline_commands_run_as_printed(tmp_path, monkeypatch):
    blocks = offline_blocks(README.read_text())
    assert blocks, "README.md has no ```bash offline``` block: the commands it promises are no longer checked"
    cmds = [c for b in blocks for c in commands(b)]
    assert cmds and all(cmds), blocks
    from cifar_nb.engine import data
    monkeypatch.chdir(ROOT)
    try:
        data.locate_data_root()
        have_data = True
    except data.DataError:
        have_data = False
    env = dict(os.environ, PATH=f"{tools_bin()}{os.pathsep}{os.environ.get('PATH', '')}",
               VIRTUAL_ENV=str(tools_bin().parent), CIFAR_NB_CACHE=str(tmp_path / "cache"),
               CIFAR_NB_CHECKPOINTS=str(tmp_path / "checkpoints"), OMP_NUM_THREADS="1")
    env.pop("CIFAR_NB_RESULTS", None)

    def run(cmd):
        t0 = time.monotonic()
        p = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=300)
        return p, round(time.monotonic() - t0, 1)

    # Two at a time: most of each command is starting Python and importing torch.
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = list(pool.map(run, cmds))
    failures, took = [], [(t, cmd) for (_, t), cmd in zip(done, cmds)]
    for cmd, (p, _) in zip(cmds, done):
        if not have_data and "data check" in cmd:
            # no data root anywhere: the command must say so, naming where it looked
            if p.returncode == 0 or "no data root found" not in p.stderr:
                failures.append(f"$ {cmd}\n  (no data root here) exit {p.returncode}, expected the "
                                f"'no data root found' error\n  stderr: {p.stderr[-2000:]}")
            continue
        if p.returncode != 0:
            failures.append(f"$ {cmd}\n  exit {p.returncode}\n  stderr: {p.stderr[-2000:]}")
        elif not p.stdout.strip():
            failures.append(f"$ {cmd}\n  printed nothing")
    assert not failures, "README commands that do not run as printed:\n" + "\n".join(failures)
    print("README offline commands (seconds):", took)
