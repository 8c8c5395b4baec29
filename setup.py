"""Build hook: ship the repository's ``rules/``, ``playbooks/`` and ``scenarios/`` inside the
package, so wheel installs find the detection rules, response playbooks and drill scenarios (they
live at the top of the repository, where analysts read and add to them)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithRules(build_py):
    def run(self) -> None:
        super().run()
        for folder in ("rules", "playbooks", "scenarios"):
            source = Path(__file__).parent / folder
            if source.is_dir():
                shutil.copytree(source, Path(self.build_lib) / "interlock" / folder, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildWithRules})
