"""Build hook: ship the repository's ``rules/`` and ``playbooks/`` inside the package, so wheel
installs find the detection rules and response playbooks (they live at the top of the repository,
where analysts read and add to them)."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithRules(build_py):
    def run(self) -> None:
        super().run()
        rules = Path(__file__).parent / "rules"
        if rules.is_dir():
            shutil.copytree(rules, Path(self.build_lib) / "interlock" / "rules", dirs_exist_ok=True)
        playbooks = Path(__file__).parent / "playbooks"
        if playbooks.is_dir():
            shutil.copytree(playbooks, Path(self.build_lib) / "interlock" / "playbooks",
                            dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildWithRules})
