"""Every console command that README.md, experiments/README.md and the documentation pages
(docs/**/*.md) show composes with the real configs (its groups, options and override keys exist,
and the config resolves), and every config key or ``group=option`` they name in passing exists.

A command is taken from the pages' code (indented and fenced blocks, inline code spans) as a
user would type it; placeholders (``<run>``, ``$(...)``, ``$S``) stay as text or are left out, and
a sweep (``-m a=x,y``) is composed with its first value.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from hydra.errors import HydraException
from omegaconf import OmegaConf

from tests.conftest import REPO
from tests.helpers import compose_config, needs

#: the pages users read: the READMEs and the site's own pages (not the linked experiments/results
#: records, which keep the commands of their time)
DOCS = REPO / "docs"
READMES = (
    REPO / "README.md",
    REPO / "experiments" / "README.md",
    *sorted(p for p in DOCS.rglob("*.md") if p.resolve().is_relative_to(DOCS.resolve())),
)
#: console script (or ``python -m attrnet.cli.<name>``) -> its config in conf/
CONFIGS = {
    "train": "train",
    "reid": "reid",
    "predict": "predict",
    "export": "export",
    "data": "dataset",
}
COMMAND = re.compile(r"(?:attrnet-|-m attrnet\.cli\.)(train|reid|predict|export|data)(?![\w-])")
#: override prefixes that need an optional extra's Hydra plugin
PLUGINS = {
    "hparams_search=": "hydra_plugins.hydra_optuna_sweeper",
    "hydra/launcher=slurm": "hydra_plugins.hydra_submitit_launcher",
}
#: keys named in passing (``data.val_count``, ``model.net.pretrained=true``), by their root
KEY = re.compile(r"[~+]?((?:data|model|optimizer|trainer|callbacks|loss|reid|aggregate)\.\w[\w.]*)")
GROUPS = "data|model|loss|optimizer|objective|trainer|experiment|hparams_search"
GROUP_OPTION = re.compile(rf"({GROUPS})=(\w+)")
#: Python names in the READMEs that look like keys (the Trainer's method, the API's model.info)
NOT_KEYS = {"trainer.predict", "model.info.image_size"}
#: the configs in which a key named in passing may live (dataset-, objective-, preset-specific)
CONTEXTS = [
    (),
    ("data=peta",),
    ("data=pa100k",),
    ("data=rap",),
    ("objective=apr",),
    ("reid=default",),
    ("experiment=optimizer_ablation",),
    ("trainer=ddp",),
    ("model=timm", "model.net.name=convnext_tiny"),
]


def _code_texts(text: str) -> list[str]:
    """Inline code spans, and the lines of indented and fenced blocks (``\\`` joined)."""
    texts = re.findall(r"`([^`\n]+)`", text)
    fenced, lines = False, []
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif fenced or line.startswith("    "):
            lines.append(line)
    return texts + re.sub(r"\\\n\s*", " ", "\n".join(lines)).splitlines()


def _overrides(arguments: str) -> tuple[str, ...]:
    """The Hydra overrides of a command line, as composed for one job."""
    arguments = re.sub(r"\$\([^)]*\)", "/tmp/placeholder", arguments)
    tokens = shlex.split(re.split(r"&&|\|\||;|\s\|\s", arguments)[0], comments=True)
    overrides, skip = [], False
    for token in tokens:
        if skip or token in ("-m", "--multirun"):
            skip = False
            continue
        if token == "--cfg":
            skip = True
        elif "=" in token and not token.startswith("$"):
            key, value = token.split("=", 1)
            if re.fullmatch(r"<[^>]*>", value):
                continue  # a placeholder for a group option, e.g. experiment=<name>
            value = re.sub(r"<[^>]*>", "placeholder", value)  # logs/train/runs/<run>/...
            if not value.startswith("["):
                value = value.split(",")[0]  # a sweep: its first value
            overrides.append(f"{key}={value}")
        elif token.startswith("~"):
            overrides.append(token)
    return tuple(overrides)


def readme_commands() -> list[tuple[str, tuple[str, ...]]]:
    """(config name, overrides) of every distinct command in the READMEs."""
    found: dict[tuple[str, tuple[str, ...]], None] = {}
    for readme in READMES:
        for text in _code_texts(readme.read_text()):
            for match in COMMAND.finditer(text):
                found[(CONFIGS[match[1]], _overrides(text[match.end() :]))] = None
    return list(found)


COMMANDS = readme_commands()


def named_in_passing() -> tuple[set[str], set[tuple[str, str]]]:
    """Config keys and ``group=option`` choices in the READMEs' inline code spans."""
    keys, choices = set(), set()
    for readme in READMES:
        for span in re.findall(r"`([^`\n]+)`", readme.read_text()):
            for token in span.split():
                key = KEY.fullmatch(token.split("=", 1)[0])
                if key and key[1] not in NOT_KEYS:
                    keys.add(key[1])
                choice = GROUP_OPTION.match(token)
                if choice:
                    choices.add((choice[1], choice[2]))
    return keys, choices


def test_the_readmes_show_commands_of_every_script() -> None:
    names = {name for name, _ in COMMANDS}
    assert names == set(CONFIGS.values())
    assert len(COMMANDS) >= 40, COMMANDS


def test_the_docs_pages_are_read() -> None:
    """The site's pages, the API pages included, are read; the linked results records are not."""
    pages = {p.relative_to(REPO).as_posix() for p in READMES}
    assert {"docs/index.md", "docs/reid.md", "docs/api/load.md"} <= pages
    assert not [p for p in pages if p.startswith("docs/results/")]


def _case(name: str, overrides: tuple[str, ...]) -> pytest.ParameterSet:
    plugins = [p for prefix, p in PLUGINS.items() if any(o.startswith(prefix) for o in overrides)]
    return pytest.param(
        name, overrides, marks=needs(*plugins), id=f"{name} {' '.join(overrides)}"[:120]
    )


@pytest.mark.parametrize(("name", "overrides"), [_case(n, o) for n, o in COMMANDS])
def test_readme_command_composes(name: str, overrides: tuple[str, ...], tmp_path: Path) -> None:
    cfg = compose_config(name, tmp_path, overrides)
    OmegaConf.to_container(cfg, resolve=True)


def test_a_wrong_key_or_option_fails(tmp_path: Path) -> None:
    """What the composition above would catch: a key or a group option the configs lack."""
    for wrong in ("model.net.no_such_key=1", "optimizer=no_such_plan"):
        with pytest.raises(HydraException, match="no_such"):
            compose_config("train", tmp_path, [wrong])


def test_keys_and_options_named_in_passing_exist(tmp_path: Path) -> None:
    keys, choices = named_in_passing()
    assert {"callbacks.nonfinite_loss.max_lag", "model.net.pretrained"} <= keys  # found at all
    missing = object()
    configs = [compose_config("train", tmp_path, list(c)) for c in CONTEXTS]
    absent = {
        k for k in keys if all(OmegaConf.select(c, k, default=missing) is missing for c in configs)
    }
    assert not absent, f"keys the READMEs name that no config has: {sorted(absent)}"
    options = {(g, o) for g, o in choices if not (REPO / "conf" / g / f"{o}.yaml").is_file()}
    assert not options, f"group options the READMEs name that conf/ lacks: {sorted(options)}"
