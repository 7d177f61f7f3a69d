"""Hydra's own flags and override grammar keep working through trainlab's command-line check (issue 12, items 4, 12).

The check before Hydra (:func:`trainlab.validate.check_command_line`) splits the command line with Hydra's own
argparse parser, so the arguments of Hydra's flags (``-sc install=bash``, ``-cn eval``, ``--info defaults``) are not
taken for overrides, and it expands every sweep grammar Hydra accepts (``glob``, ``range``, ``choice``, ``interval``,
``tag``, ``sort``, ``shuffle``, quoted values, lists) before it looks up option names.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from trainlab.validate import CONFIG_DIR, ConfigError, check_command_line, explain_override_error, parse_command_line

from .conftest import BIN

#: (arguments as typed, split on spaces; a fragment of the one-line refusal): bad sweeps, for docs/bad_inputs.md
CASES = [
    ("-m activation=glob(zz*)", "activation=glob(zz*): matches no option of activation. Valid: elu, gelu"),
    (
        "-m activation=glob(*,exclude=[*])",
        "activation=glob(*,exclude=[*]): matches no option of activation",
    ),
    (
        "-m activation=choice(relu,tanhh)",
        "activation=tanhh: is not an option of activation; did you mean 'tanh'?",
    ),
    ("-m augment=[hflip],[flop]", "augment=flop: is not an option of augment"),
    ("-m activation=sort(tanh,rellu)", "activation=rellu: is not an option of activation; did you mean 'relu'?"),
    ("-m activation=shuffle(relu,gelu,sigmod)", "activation=sigmod: is not an option of activation"),
    ("-m activation=tag(act,choice(relu,tnah))", "activation=tnah: is not an option of activation"),
    ("-m activation=range(1,2)", "activation=1: is not an option of activation"),
    ("-m activation=interval(0,1)", "interval() sweeps a number; activation takes option names"),
    ("-m activation='relu6'", "activation=relu6: is not an option of activation; did you mean 'relu'?"),
    ("-m activation=sort(glob(*))", "Glob is incompatible with"),
    ("-cn eval optimiser.lr=0.1", "'optimiser' is not a setting; did you mean 'optimizer'?"),
]


def refusal(args: str) -> str:
    with pytest.raises(ConfigError) as err:
        check_command_line(args.split())
    return str(err.value)


# ---- the command line split as Hydra splits it ----
@pytest.mark.parametrize(
    ("argv", "overrides", "config_name", "runs_job"),
    [
        (["-sc", "install=bash"], ("install=bash",), "train", False),
        (["--shell-completion", "query=bash"], ("query=bash",), "train", False),
        (["--info"], (), "train", False),
        (["--info", "defaults", "activation=tanh"], ("activation=tanh",), "train", False),
        (["-i", "searchpath"], (), "train", False),
        (["-cn", "eval", "ckpt_path=x", "--cfg", "job"], ("ckpt_path=x",), "eval", False),
        (["--config-name=eval.yaml", "ckpt_path=x"], ("ckpt_path=x",), "eval", True),
        (["--resolve", "--cfg", "job"], (), "train", False),
        (["-c", "hydra", "-p", "hydra.run"], (), "train", False),
        (["--cfg", "all", "--package", "trainer"], (), "train", False),
        (["--hydra-help"], (), "train", False),
        (["--help"], (), "train", False),
        (["-h", "model=cnn"], ("model=cnn",), "train", False),
        (["--run", "seed=1"], ("seed=1",), "train", True),
        (["-r", "seed=1"], ("seed=1",), "train", True),
        (["--multirun", "seed=1,2"], ("seed=1,2",), "train", True),
        (["-m", "seed=1,2", "model=cnn"], ("seed=1,2", "model=cnn"), "train", True),
        ([], (), "train", True),
    ],
)
def test_hydra_flags_and_their_arguments_are_not_overrides(argv, overrides, config_name, runs_job):
    line = parse_command_line(argv)
    assert line.overrides == overrides and line.config_name == config_name and line.runs_job == runs_job


def test_a_command_line_hydra_refuses_is_left_to_hydra():
    # Hydra's parser refuses these itself (with its usage line): nothing for the check to add
    for argv in (["--cfg", "everything"], ["seed=1", "-m", "seed=2"], ["--no-such-flag"], ["--version"]):
        assert parse_command_line(argv) is None
        assert check_command_line(argv) is None


def test_shell_completion_and_rerun_arguments_are_not_checked():
    assert "shell-completion" in parse_command_line(["-sc", "install=bash"]).check_skipped
    assert check_command_line(["-sc", "install=bash"]).check_skipped
    assert check_command_line(["-sc", "query=bash"]).check_skipped
    line = check_command_line(["--experimental-rerun", "logs/x/.hydra/config.pickle", "whatever=1"])
    assert "experimental-rerun" in line.check_skipped and line.runs_job


def test_config_path_and_dir_add_their_groups_and_keys(tmp_path):
    """-cd adds a directory of configs (its groups join ours); -cp/-cn pick another config: its keys are valid."""
    (tmp_path / "extra" / "mygroup").mkdir(parents=True)
    (tmp_path / "extra" / "mygroup" / "a.yaml").write_text("x: 1\n")
    (tmp_path / "extra" / "activation").mkdir()
    (tmp_path / "extra" / "activation" / "mish.yaml").write_text("name: mish\n")
    (tmp_path / "extra" / "mine.yaml").write_text("defaults:\n  - _self_\nnewkey: 1\n")
    extra = str(tmp_path / "extra")
    line = check_command_line(["-cd", extra, "mygroup=a", "activation=mish", "optimizer=sgd"])
    assert line.config_dirs[0] == tmp_path / "extra" and line.config_dirs[-1] == CONFIG_DIR
    assert "mygroup=b: is not an option of mygroup" in refusal(f"-cd {extra} mygroup=b")
    check_command_line(["-cp", extra, "-cn", "mine", "newkey=2", "mygroup=a"])
    assert "'nokey' is not a setting" in refusal(f"-cp {extra} -cn mine nokey=2")
    # a config Hydra finds elsewhere (a package, another search path): not checked here, Hydra answers
    assert check_command_line(["-cp", "pkg://somewhere", "anything=1"]).check_skipped
    assert "not a file" in check_command_line(["-cn", "no_such_config", "anything=1"]).check_skipped


def test_a_config_named_with_cn_is_checked_against_its_own_keys():
    check_command_line(["-cn", "eval", "ckpt_path=x.ckpt", "trust_checkpoint=true", "+data.batch_size=512"])
    assert "'ckpt_paht' is not a setting; did you mean 'ckpt_path'?" in refusal("-cn eval ckpt_paht=x")


# ---- every override grammar of Hydra ----
@pytest.mark.parametrize(
    "override",
    [
        "activation=glob(*)",
        "activation=glob(*,exclude=[maxout,prelu])",
        "activation=glob([r*,t*],exclude=relu)",
        "activation=glob(include=[s*],exclude=[selu])",
        "activation=choice(relu,tanh)",
        "activation=choice('relu',\"tanh\")",
        "activation=relu,tanh",
        "activation='relu',\"gelu\"",
        "activation=tag(act,choice(relu,tanh))",
        "activation=sort(tanh,relu,elu)",
        "activation=sort(tanh,relu,reverse=true)",
        "activation=shuffle(relu,tanh)",
        "activation=shuffle(choice(relu,tanh))",
        "activation='relu'",
        "augment=[hflip,'crop']",
        "augment=choice([hflip],[crop,cutout],[])",
        "augment=crop,[hflip,crop,cutout]",
        "augment=[]",
        "activation=null",
        "seed=range(1,4)",
        "seed=range(3)",
        "seed=shuffle(range(1,4))",
        "seed=tag(seeds,range(1,3))",
        "seed=sort(3,1,2)",
        "optimizer.lr=interval(0.0001,0.1)",
        "optimizer.lr=tag(log,interval(0.0001,0.1))",
        "optimizer.lr=range(0.1,0.5,0.2)",
        "optimizer.lr='0.1'",
        "tags=[a,'b c']",
        "+trainer.limit_val_batches=2",
        "~logger",
    ],
)
def test_every_sweep_grammar_of_hydra_is_understood(override):
    check_command_line(["-m", override])


@pytest.mark.parametrize(("args", "fragment"), CASES)
def test_unknown_names_inside_a_sweep_are_refused_with_a_suggestion(args, fragment):
    message = refusal(args)
    assert fragment in message and message.startswith("invalid command line, nothing was run:")
    assert message.count("\n") == 1  # one line naming the override


def test_glob_is_expanded_against_the_group_options():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from trainlab.validate import config_groups, group_choices

    options = config_groups()["activation"]
    (override,) = OverridesParser.create().parse_overrides(["activation=glob(*,exclude=[maxout,prelu])"])
    chosen, problem = group_choices(override, options)
    assert problem is None and sorted(n for (n,) in chosen) == sorted(set(options) - {"maxout", "prelu"})
    (override,) = OverridesParser.create().parse_overrides(["augment=choice([hflip,'crop'],[])"])
    assert group_choices(override, config_groups()["augment"]) == ([["hflip", "crop"], []], None)


def test_a_nested_typo_is_explained_also_beside_a_glob_sweep():
    assert explain_override_error(["-m", "activation=glob(*,exclude=[maxout])"]) is None
    message = explain_override_error(["-m", "activation=glob(t*)", "optimizer.lrr=0.1"])
    assert "'lrr' is not a setting of optimizer; did you mean 'lr'?" in message
    assert explain_override_error(["-m", "optimizer.lr=interval(0.001,0.1)", "model.widht=3"]).startswith(
        "model.widht=3: 'widht' is not a setting of model"
    )
    assert explain_override_error(["-sc", "install=bash"]) is None


# ---- as a user types them ----
def console(tmp_path, script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / script), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )


def files_under(path) -> list:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "args", "expected"),
    [
        ("trainlab-train", ["-sc", "install=bash"], "hydra_bash_completion"),
        ("trainlab-eval", ["-sc", "install=bash"], "hydra_bash_completion"),
        ("trainlab-train", ["--info", "defaults"], "Defaults List"),
        ("trainlab-train", ["--info"], "Config search path"),
        ("trainlab-train", ["-cn", "eval", "ckpt_path=x", "--cfg", "job"], "ckpt_path: x"),
        ("trainlab-train", ["--resolve", "--cfg", "job"], "task_name: train"),
        ("trainlab-train", ["--cfg", "job", "-p", "optimizer"], "lr:"),
        ("trainlab-train", ["--hydra-help"], "Hydra ("),
        ("trainlab-train", ["--version"], "Hydra 1."),
        ("trainlab-eval", ["--cfg", "job", "ckpt_path=x"], "trust_checkpoint: false"),
    ],
    ids=[
        "sc",
        "eval-sc",
        "info-defaults",
        "info",
        "cn-eval",
        "resolve",
        "package",
        "hydra-help",
        "version",
        "eval-cfg",
    ],
)
def test_hydra_flags_work_and_write_nothing(tmp_path, script, args, expected):
    proc = console(tmp_path, script, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert expected in proc.stdout and "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "logs").exists()  # printing flags neither run a job nor check (create) the log dir


@pytest.mark.slow
def test_shell_completion_query_completes_group_options(tmp_path):
    proc = subprocess.run(
        [str(BIN / "trainlab-train"), "-sc", "query=bash"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "COMP_LINE": "trainlab-train activation=ta"},
        timeout=300,
    )
    assert proc.returncode == 0 and "activation=tanh" in proc.stdout.split()
    assert not (tmp_path / "logs").exists()


@pytest.mark.slow
def test_a_glob_matching_nothing_is_refused_in_one_line(tmp_path):
    proc = console(tmp_path, "trainlab-train", "-m", "activation=glob(zz*)")
    assert proc.returncode == 2 and "Traceback" not in proc.stdout + proc.stderr
    assert "activation=glob(zz*): matches no option of activation" in proc.stderr
    assert not (tmp_path / "logs").exists()
    proc = console(tmp_path, "trainlab-train", "-m", "activation=choice(relu,tanhh)")
    assert proc.returncode == 2 and "did you mean 'tanh'?" in proc.stderr and not (tmp_path / "logs").exists()


@pytest.mark.slow
def test_a_glob_sweep_runs_one_job_per_matching_option(tmp_path):
    quick = ["trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1", "test=false"]
    proc = console(tmp_path, "trainlab-train", "-m", "activation=glob(s*,exclude=[selu])", *quick)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    (sweep,) = (tmp_path / "logs" / "train" / "multiruns").iterdir()
    jobs = sorted(p.parent for p in sweep.glob("*/metrics.json"))
    assert len(jobs) == 2
    for job in jobs:
        assert json.loads((job / "metrics.json").read_text())["status"] == "completed"
    overrides = sorted((job / ".hydra" / "overrides.yaml").read_text() for job in jobs)
    assert "activation=sigmoid" in overrides[0] and "activation=silu" in overrides[1]
