"""Reference results shipped with the course: converged full-mode runs, with their provenance.

Fast mode cuts training to fit a classroom hour; the lesson must not depend on
that budget. So the converged full-mode results (learning curves, strategy
comparisons) are computed once, in the background, and shipped as small JSON
records under ``data/reference-results/``, each with how it was made: the
command as typed, the git commit, the sha256 of the model and of the data, the
CPU time and the date. Notebooks in fast mode show their live points on top of
these, labelled as such.

``ship`` writes a record, ``shipped`` reads one back (by kind and key) and
refuses one whose model or data files have changed since it was made
(``StaleShippedError``: its numbers would describe something else),
``list_shipped`` lists what is there. Records are strict JSON (no NaN).
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from course_lib import data as ds
from course_lib.paths import DATA_DIR, REPO_ROOT

SHIPPED_DIR = DATA_DIR / "reference-results"


class NotShippedError(FileNotFoundError):
    """No shipped result matches; the message lists what is shipped."""


class StaleShippedError(NotShippedError):
    """A shipped result was made with a model or data file that has changed since."""


@dataclass(frozen=True)
class Shipped:
    """A shipped result: its payload (as the live command's JSON) and how it was made."""

    kind: str
    key: dict
    payload: dict
    provenance: dict
    path: Path

    def as_dict(self) -> dict:
        return {"kind": self.kind, "key": self.key, **self.payload, "provenance": self.provenance}


def record_name(kind: str, key: dict) -> str:
    """``<kind>--<value>-<value>...json`` from the key's values, in key order (file-name safe)."""
    parts = [str(value).replace("/", "_").replace(" ", "_") for value in key.values()]
    return f"{kind}--{'-'.join(parts)}.json"


def provenance(
    *, command: str, model: str | os.PathLike | None, datasets: list[str], cpu_s: float
) -> dict:
    """How a result was made: command, commit, model and data sha256, CPU seconds, date."""
    from course_lib.models import model_file

    record = {
        "command": command,
        "commit": _git_commit(),
        "cpu_s": round(float(cpu_s), 1),
        "date": datetime.date.today().isoformat(),
        "datasets": {str(d): ds.dataset_sha256(d) for d in datasets},
    }
    if model is not None:
        record["model"] = str(model)
        try:
            record["model_sha256"] = ds.sha256_of(model_file(model))
        except ValueError:  # not a MACE file (e.g. CHGNet): its version names it
            record["model_sha256"] = None
    return record


def command_provenance(args, *, cpu_s: float) -> dict:
    """``provenance`` of the ``course`` command running now (argv as typed, ``args.model``, ``args.dataset`` if any)."""
    import shlex
    import sys

    from course_lib.models import resolve_model_name

    return provenance(
        command="course " + shlex.join(sys.argv[1:]),
        # "auto" named, so that the stale check can find the file (None: trained from scratch)
        model=None if args.model is None else resolve_model_name(args.model),
        datasets=[args.dataset] if getattr(args, "dataset", None) else [],
        cpu_s=cpu_s,
    )


def ship(kind: str, key: dict, payload: dict, prov: dict, *, folder: Path | None = None) -> Path:
    """Write one shipped record atomically; an existing record with the same key is replaced."""
    from course_lib.cli import strict_json

    folder = folder or SHIPPED_DIR
    record = {"kind": kind, "key": key, "payload": payload, "provenance": prov}
    path = folder / record_name(kind, key)
    text = json.dumps(strict_json(record), indent=1, allow_nan=False) + "\n"
    ds.atomic_write_text(path, text)
    return path


def shipped(kind: str, key: dict, *, folder: Path | None = None) -> Shipped:
    """The shipped record of ``kind`` with exactly ``key``; ``NotShippedError`` if none."""
    folder = folder or SHIPPED_DIR
    path = folder / record_name(kind, key)
    if not path.is_file():
        available = [p.name for p in list_shipped(kind, folder=folder)]
        raise NotShippedError(
            f"no shipped {kind} for {key}; shipped: {', '.join(available) or 'none'}. "
            "Run it live (without --shipped), or make it with --ship."
        )
    record = json.loads(path.read_text())
    if record.get("key") != key:
        raise NotShippedError(f"{path.name} holds {record.get('key')}, not {key}")
    changed = stale_inputs(record["provenance"])
    if changed:
        raise StaleShippedError(
            f"{path.name} was made with other versions of {', '.join(changed)} than the ones "
            f"here; its numbers would describe another model or data. Remake it: "
            f"{record['provenance'].get('command', 'the command with --ship')}"
        )
    return Shipped(
        kind=kind,
        key=record["key"],
        payload=record["payload"],
        provenance=record["provenance"],
        path=path,
    )


def stale_inputs(prov: dict) -> list[str]:
    """The model and datasets of a record's provenance whose sha256 differs from the files here.

    Inputs that cannot be found here (a model whose weights are not on this machine) are
    not called stale: there is nothing to compare against.
    """
    from course_lib.models import REGISTRY, local_file

    changed = []
    if prov.get("model_sha256"):
        name = str(prov.get("model"))
        path = local_file(REGISTRY[name]) if name in REGISTRY else Path(name)
        if path is not None and Path(path).is_file() and ds.sha256_of(path) != prov["model_sha256"]:
            changed.append(f"model {name}")
    for name, sha in (prov.get("datasets") or {}).items():
        try:
            now = ds.dataset_sha256(name)
        except (ValueError, FileNotFoundError):
            continue
        if sha and now != sha:
            changed.append(f"dataset {name}")
    return changed


def print_shipped(record: Shipped, args) -> None:
    """Show a shipped record as its live command would (``--json`` or its table), with its origin."""
    from course_lib.cli import print_json

    if args.json:
        print_json(record.payload | {"shipped": record.provenance}, args)
    else:
        print(record.payload["table"])
        print(f"shipped reference result, made by: {record.provenance['command']}")


def list_shipped(kind: str | None = None, *, folder: Path | None = None) -> list[Path]:
    """Shipped record files (of ``kind``), sorted."""
    folder = folder or SHIPPED_DIR
    pattern = f"{kind}--*.json" if kind else "*.json"
    return sorted(folder.glob(pattern)) if folder.is_dir() else []


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None
