"""The notebooks for students: every `### BEGIN SOLUTION` ... `### END SOLUTION` block is replaced by
`raise NotImplementedError` (at the block's indentation), every other cell is left as it is, and the exercises'
checks (exercises.py) are copied beside them. The teacher's version (this folder) keeps the solutions.

    python notebooks/make_student_version.py                  # writes student_notebooks/ (beside notebooks/)
    python notebooks/make_student_version.py --out handout    # or any folder
"""
import argparse
import glob
import json
import os
import re
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
BLOCK = re.compile(r"^([ \t]*)### BEGIN SOLUTION[^\n]*\n.*?^[ \t]*### END SOLUTION[^\n]*$", re.S | re.M)


def strip_solutions(source: str) -> str:
    """A cell's source with each solution block replaced by `raise NotImplementedError`."""
    return BLOCK.sub(lambda m: f"{m.group(1)}raise NotImplementedError", source)


def make(out: str, src: str = HERE) -> list:
    """The student version of every notebook in `src` (and exercises.py) written to `out`. Returns the paths."""
    os.makedirs(out, exist_ok=True)
    written = []
    for path in sorted(glob.glob(os.path.join(src, "*.ipynb"))):
        with open(path, encoding="utf-8") as f:
            nb = json.load(f)
        for cell in nb["cells"]:
            text = "".join(cell["source"])
            if cell["cell_type"] == "code" and "### BEGIN SOLUTION" in text:
                lines = strip_solutions(text).split("\n")
                cell["source"] = [line + "\n" for line in lines[:-1]] + [lines[-1]]
        target = os.path.join(out, os.path.basename(path))
        with open(target, "w", encoding="utf-8") as f:
            json.dump(nb, f, indent=1, ensure_ascii=False)
            f.write("\n")
        written.append(target)
    shutil.copy(os.path.join(src, "exercises.py"), os.path.join(out, "exercises.py"))
    return written


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(HERE), "student_notebooks"),
                    help="the folder for the student notebooks (outside notebooks/, which the tests run)")
    args = ap.parse_args()
    paths = make(args.out)
    print(f"wrote {len(paths)} notebooks and exercises.py to {args.out}")
