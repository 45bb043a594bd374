"""What a refused command must leave as it was: every file under the given roots, by content."""

import hashlib
from pathlib import Path


def snapshot(*roots) -> dict[str, str]:
    """{path: sha256} of every file under `roots` (a missing root holds nothing)."""
    out = {}
    for root in map(Path, roots):
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def assert_unchanged(before: dict[str, str], *roots) -> None:
    after = snapshot(*roots)
    added, removed = sorted(set(after) - set(before)), sorted(set(before) - set(after))
    changed = sorted(p for p in set(before) & set(after) if before[p] != after[p])
    assert not (added or removed or changed), f"added {added}, removed {removed}, changed {changed}"
