"""No function in mlauto takes more than 8 parameters: stages take their config sections (frozen
dataclasses from the schema), not re-spelled keywords."""

import ast
from pathlib import Path

import mlauto

MAX_PARAMS = 8
# scikit-learn's contract: an estimator's __init__ names every hyperparameter, so get_params and
# clone see them; these are estimators, not stages.
ESTIMATORS = {("mlauto/models/mlp.py", "__init__")}


def _too_many() -> list[str]:
    root = Path(mlauto.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = f"mlauto/{path.relative_to(root).as_posix()}"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")]
                if len(names) > MAX_PARAMS and (rel, node.name) not in ESTIMATORS:
                    found.append(f"{rel}:{node.lineno} {node.name} takes {len(names)}")
    return found


def test_no_function_takes_more_than_eight_parameters():
    assert _too_many() == []
