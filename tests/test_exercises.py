"""The notebooks' exercises: each check passes on the notebook's solution, and fails with its message on the
student's stub (`raise NotImplementedError`) and on one typical mistake. The student version is made from the
teacher's and changes nothing but the solutions."""
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = os.path.join(ROOT, "notebooks")
import make_student_version as student  # noqa: E402  (notebooks/: pytest's pythonpath)


def exercise_cells(folder=NOTEBOOKS):
    """(notebook, solution cell source, check cell source) for every exercise."""
    out = []
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".ipynb"):
            continue
        cells = json.load(open(os.path.join(folder, name)))["cells"]
        for i, c in enumerate(cells):
            text = "".join(c["source"])
            if c["cell_type"] == "code" and ("### BEGIN SOLUTION" in text or "raise NotImplementedError" in text) \
                    and i + 1 < len(cells) and "exercises.check_" in "".join(cells[i + 1]["source"]):
                out.append((name, text, "".join(cells[i + 1]["source"])))
    return out


def run(solution: str, check: str):
    ns = {}
    exec(solution, ns)
    exec(check, ns)


# One typical mistake per exercise: (function name, wrong body, words the check must say)
MISTAKES = {
    "rot6d_to_matrix": ("d6.reshape(*d6.shape[:-1], 3, 2)[..., :, [0, 1, 1]]", "not orthonormal"),
    "causal_conv": ("__import__('torch').nn.functional.conv1d(x, weight, bias, padding=weight.shape[-1] // 2)",
                    "into the future"),
    "ddim_cfg_step": ("(lambda x0: math.sqrt(ab_prev) * x0 + math.sqrt(1 - ab_prev) * (x_t - math.sqrt(ab_t) * x0)"
                      " / math.sqrt(1 - ab_t))(x0_cond + s * (x0_cond - x0_uncond))", r"cond \+ s \(cond - uncond\)"),
    "partner_rows": ("h.flip(0)", "reverses the order"),
    "router_fusion": ("(1 - alpha) * (h @ W_m.T) + alpha * (emb @ W_t.T)[:, None, :]", "alpha on the right side"),
    "dts_gate": ("(torch.sigmoid(logits + bias) > 0.5) & mask[..., None]", "is the bias added after the sigmoid"),
    "bias_rule": ("(bias + step * torch.sign(counts - capacity * S / len(bias))).clamp(-1 + 1e-4, -1e-4)",
                  r"\*harder\* to select"),
    "frechet": ("float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(np.cov(a, rowvar=False) + np.cov(b, rowvar=False)"
                " - 2 * np.cov(a, rowvar=False) @ np.cov(b, rowvar=False)))", "matrix square root"),
}


def test_there_is_an_exercise_in_every_component_notebook_and_the_evaluation():
    names = {n for n, _, _ in exercise_cells()}
    assert {"02_causal_skeletal_vae.ipynb", "03_text_and_diffusion.ipynb", "04_cooperative_denoiser.ipynb",
            "05_synergistic_router.ipynb", "06_dynamic_temporal_selection.ipynb", "08_evaluation.ipynb"} <= names
    assert len(exercise_cells()) == len(MISTAKES)


@pytest.mark.parametrize("name,solution,check", exercise_cells(), ids=lambda x: x if isinstance(x, str) and
                         x.endswith(".ipynb") else "")
def test_each_check_passes_the_solution_and_catches_the_stub_and_a_typical_mistake(name, solution, check, capsys):
    run(solution, check)
    assert "correct" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="not done yet"):
        run(student.strip_solutions(solution), check)
    fn = next(f for f in MISTAKES if f"def {f}(" in solution)
    wrong, words = MISTAKES[fn]
    mistaken = student.strip_solutions(solution).replace("raise NotImplementedError", "return " + wrong)
    with pytest.raises(AssertionError, match=words):
        run(mistaken, check)


def test_the_student_version_changes_only_the_solutions(tmp_path):
    paths = student.make(str(tmp_path))
    assert len(paths) == len([n for n in os.listdir(NOTEBOOKS) if n.endswith(".ipynb")])
    assert (tmp_path / "exercises.py").is_file()
    for path in paths:
        mine = json.load(open(os.path.join(NOTEBOOKS, os.path.basename(path))))["cells"]
        theirs = json.load(open(path))["cells"]
        assert len(mine) == len(theirs)
        for a, b in zip(mine, theirs):
            if "### BEGIN SOLUTION" in "".join(a["source"]):
                assert "BEGIN SOLUTION" not in "".join(b["source"]) and "raise NotImplementedError" in "".join(b["source"])
            else:
                assert a == b
    # the student's check cells fail with their message, not with an unrelated error
    for name, stub, check in exercise_cells(str(tmp_path)):
        with pytest.raises(AssertionError, match="not done yet"):
            run(stub, check)
