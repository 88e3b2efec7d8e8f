"""scripts/python.mjs (resolvePython) and scripts/setup-python.mjs, run with the real node."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NODE = shutil.which("node")
RESOLVE = "import('./scripts/python.mjs').then(async m => console.log(await m.resolvePython()))"


def node(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    assert NODE is not None
    return subprocess.run(
        [NODE, *args], cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )


@unittest.skipUnless(NODE, "node is not installed")
class ResolvePythonTest(unittest.TestCase):
    def test_override_with_cloudpickle_is_used(self) -> None:
        run = node(["-e", RESOLVE], CODING_ENV_PYTHON=sys.executable)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(os.path.realpath(run.stdout.strip()), os.path.realpath(sys.executable))

    def test_broken_override_is_an_error_that_says_how_to_fix_it(self) -> None:
        run = node(["-e", RESOLVE], CODING_ENV_PYTHON="/bin/false")
        self.assertNotEqual(run.returncode, 0)
        self.assertIn("CODING_ENV_PYTHON=/bin/false", run.stderr)
        self.assertIn("pip install cloudpickle", run.stderr)

    def test_found_interpreter_imports_cloudpickle_and_is_cached(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "CODING_ENV_PYTHON"}
        run = subprocess.run([NODE, "-e", RESOLVE], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(run.returncode, 0, run.stderr)
        python = run.stdout.strip()
        self.assertTrue(os.path.isabs(python))
        probe = subprocess.run([python, "-c", "import cloudpickle"], capture_output=True, timeout=60)
        self.assertEqual(probe.returncode, 0)
        cache = REPO / "node_modules" / ".cache" / "coding-env" / "python.json"
        self.assertIn(python, cache.read_text())

    def test_setup_never_fails_the_install(self) -> None:
        run = node(["scripts/setup-python.mjs"], CODING_ENV_PYTHON="/bin/false")
        self.assertEqual(run.returncode, 0)
        self.assertIn("cloudpickle", run.stderr)
        ok = node(["scripts/setup-python.mjs"], CODING_ENV_PYTHON=sys.executable)
        self.assertIn("Python runtime interpreter:", ok.stdout)


# Calls resolvePython(opts) with the options given as JSON; prints {"python"} or {"error"}.
RESOLVE_WITH_OPTS = """
const { resolvePython } = await import('./scripts/python.mjs');
const opts = JSON.parse(process.argv[1]);
try { console.log(JSON.stringify({ python: await resolvePython(opts) })); }
catch (e) { console.log(JSON.stringify({ error: e.message })); }
"""
NOBODY = 65534


def write_wheel(package_dir: str, wheels: str) -> None:
    """A wheel of the cloudpickle package in ``package_dir`` (a zip with its metadata), written
    directly: `pip wheel` would cost a pip start and a setuptools build."""
    os.makedirs(wheels)
    info = "cloudpickle-2.2.0.dist-info"
    records = []
    with zipfile.ZipFile(os.path.join(wheels, "cloudpickle-2.2.0-py3-none-any.whl"), "w") as wheel:
        def add(name: str, data: bytes) -> None:
            wheel.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            records.append(f"{name},sha256={digest},{len(data)}")

        for name in sorted(os.listdir(package_dir)):
            if name.endswith(".py"):
                add(f"cloudpickle/{name}", Path(package_dir, name).read_bytes())
        add(f"{info}/METADATA", b"Metadata-Version: 2.1\nName: cloudpickle\nVersion: 2.2.0\n")
        add(f"{info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{info}/RECORD", "".join(f"{r}\n" for r in [*records, f"{info}/RECORD,,"]))


# Stands in for apt-get: records its arguments and "installs python3-cloudpickle" by giving the
# fake Debian python3 (a venv without system packages) the system's site-packages.
FAKE_APT_GET = """#!/bin/sh
echo "$@" >> {log}
case "$1" in install)
  /bin/sed -i 's/^include-system-site-packages = false/include-system-site-packages = true/' {cfg} ;;
esac
"""


@unittest.skipUnless(NODE, "node is not installed")
@unittest.skipUnless(os.geteuid() == 0, "the sandbox's reachability rules apply to root only")
class RootMachineFixture(unittest.TestCase):
    """This project's machine: pyenv's python3 (under a directory the sandbox users cannot enter)
    first on PATH, then Debian's python3 with or without cloudpickle. Setup must only ever answer an
    interpreter the executor accepts, never one made from the unreachable Python.

    The tests are in the classes below: the one that makes a venv (ensurepip, pip's start and its
    install cost seconds of CPU) in a class of its own, so it can run beside the others
    (scripts/run-python-tests.mjs starts it first)."""

    @classmethod
    def setUpClass(cls) -> None:
        base = os.path.realpath(sys.executable)
        probe = subprocess.run([base, "-c", "import cloudpickle, ensurepip"], capture_output=True, timeout=60)
        if probe.returncode != 0:
            raise unittest.SkipTest("the test interpreter needs cloudpickle and ensurepip (python3-venv)")
        cls.root = tempfile.mkdtemp(prefix="resolve-python-")
        os.chmod(cls.root, 0o755)  # reachable by nobody, like /usr
        private = os.path.join(cls.root, "private")
        os.mkdir(private, 0o700)  # like /root
        cls.private = private
        # A real interpreter with cloudpickle (a copied binary) that only root can reach: pyenv's.
        cls.pyenv = os.path.join(private, "pyenv")
        cls._run([base, "-m", "venv", "--copies", "--system-site-packages", "--without-pip", cls.pyenv])
        # cloudpickle as a local wheel, so a venv's pip can install it offline (PIP_FIND_LINKS).
        cloudpickle_dir = os.path.dirname(
            subprocess.run(
                [base, "-c", "import cloudpickle; print(cloudpickle.__file__)"],
                capture_output=True, text=True, check=True, timeout=60,
            ).stdout.strip()
        )
        cls.wheels = os.path.join(cls.root, "wheels")
        write_wheel(cloudpickle_dir, cls.wheels)

    @classmethod
    def tearDownClass(cls) -> None:
        shutil.rmtree(cls.root, ignore_errors=True)

    @staticmethod
    def _run(args: list[str]) -> None:
        subprocess.run(args, check=True, capture_output=True, timeout=300)

    def setUp(self) -> None:
        self.case = tempfile.mkdtemp(dir=self.root)
        os.chmod(self.case, 0o755)
        self.addCleanup(shutil.rmtree, self.case, True)
        self.debian = os.path.join(self.case, "debian")
        self.venv_dir = os.path.join(self.case, "venv")
        self.apt_log = os.path.join(self.case, "apt.log")

    def make_debian(self, with_cloudpickle: bool) -> str:
        """Debian's python3 stand-in: the real interpreter, with or without the system's packages.
        Like Debian's python3 package, it has no `python` (which would be a second candidate that
        resolvePython makes a venv from too)."""
        args = [sys.executable, "-m", "venv", "--without-pip", self.debian]
        self._run(args[:4] + (["--system-site-packages"] if with_cloudpickle else []) + args[4:])
        python3 = os.path.join(self.debian, "bin", "python3")
        interpreter = os.path.realpath(python3)
        for name in ("python", "python3"):  # (one may be a link to the other)
            os.remove(os.path.join(self.debian, "bin", name))
        os.symlink(interpreter, python3)
        return python3

    def make_apt_get(self) -> str:
        path = os.path.join(self.case, "apt-get")
        with open(path, "w") as fh:
            fh.write(FAKE_APT_GET.format(log=self.apt_log, cfg=os.path.join(self.debian, "pyvenv.cfg")))
        os.chmod(path, 0o755)
        return path

    def resolve(
        self, system_python: str, apt_get: str | None, cache_file: str | None = None, **env: str
    ) -> dict[str, str]:
        """resolvePython as root with this case's PATH (pyenv's first), apt-get and venv place."""
        opts = {
            "env": {
                "PATH": f"{self.pyenv}/bin{os.pathsep}{self.debian}/bin",
                "PIP_NO_INDEX": "1",  # no network here: pip finds only what PIP_FIND_LINKS offers
                "PIP_NO_CACHE_DIR": "1",
                "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                **env,
            },
            "isRoot": True,
            "systemPython": system_python,
            "aptGet": apt_get,
            "venvDir": self.venv_dir,
            "cacheFile": cache_file,
        }
        run = node(["--input-type=module", "-e", RESOLVE_WITH_OPTS, json.dumps(opts)])
        self.assertEqual(run.returncode, 0, run.stderr)
        return json.loads(run.stdout.strip().splitlines()[-1])

    def assert_executor_accepts(self, python: str) -> None:
        from coding_env_runtime.runtime import _check_interpreter_reachable

        _check_interpreter_reachable(python)  # raises RuntimeFailure when the executor would refuse
        as_nobody = subprocess.run(
            [python, "-c", "import cloudpickle"], user=NOBODY, group=NOBODY, extra_groups=[],
            cwd="/", env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60,
        )
        self.assertEqual(as_nobody.returncode, 0, as_nobody.stderr)

    def assert_no_venv_from_unreachable_python(self) -> None:
        cfg = os.path.join(self.venv_dir, "pyvenv.cfg")
        if os.path.exists(cfg):
            with open(cfg) as fh:
                self.assertNotIn(self.private, fh.read())


class RootMachineSituationTest(RootMachineFixture):
    def test_the_fixture_reproduces_the_machine(self) -> None:
        pyenv_python = os.path.join(self.pyenv, "bin", "python3")
        self.assertEqual(subprocess.run([pyenv_python, "-c", "import cloudpickle"], timeout=60).returncode, 0)
        debian = self.make_debian(with_cloudpickle=False)
        self.assertNotEqual(
            subprocess.run([debian, "-c", "import cloudpickle"], capture_output=True, timeout=60).returncode, 0
        )

    def test_debian_python_with_cloudpickle_is_chosen_over_unreachable_first_on_path(self) -> None:
        debian = self.make_debian(with_cloudpickle=True)
        apt_get = self.make_apt_get()
        result = self.resolve(debian, apt_get)
        self.assertEqual(result.get("python"), debian, result)
        self.assert_executor_accepts(result["python"])
        self.assertFalse(os.path.exists(self.apt_log), "apt-get must not run when nothing is missing")

    def test_debian_python_without_cloudpickle_gets_it_from_apt_get_not_a_venv_from_pyenv(self) -> None:
        debian = self.make_debian(with_cloudpickle=False)
        apt_get = self.make_apt_get()
        result = self.resolve(debian, apt_get)
        self.assertEqual(result.get("python"), debian, result)
        self.assert_executor_accepts(result["python"])
        with open(self.apt_log) as fh:
            self.assertIn("install -y -qq python3-cloudpickle", fh.read())
        self.assertFalse(os.path.exists(self.venv_dir))

    def test_a_cached_unreachable_interpreter_is_not_reused(self) -> None:
        debian = self.make_debian(with_cloudpickle=True)
        cache = os.path.join(self.case, "python.json")
        with open(cache, "w") as fh:
            json.dump({"python": os.path.join(self.pyenv, "bin", "python3")}, fh)
        result = self.resolve(debian, None, cache_file=cache)
        self.assertEqual(result.get("python"), debian, result)
        with open(cache) as fh:
            self.assertEqual(json.load(fh)["python"], debian)

    def test_the_venv_goes_where_the_sandbox_users_can_reach_it(self) -> None:
        script = (
            "const { defaultVenvDir } = await import('./scripts/python.mjs');"
            "const checkouts = process.argv.slice(1);"
            "console.log(JSON.stringify(checkouts.map((c) => [defaultVenvDir(true, c), defaultVenvDir(false, c)])));"
        )
        reachable = os.path.join(self.case, "checkout")
        hidden = os.path.join(self.private, "checkout")  # like a clone under /root
        run = node(["--input-type=module", "-e", script, reachable, hidden])  # one node start for both
        self.assertEqual(run.returncode, 0, run.stderr)
        answers = json.loads(run.stdout)
        in_checkout = os.path.join(reachable, ".python-runtime", "venv")
        self.assertEqual(answers[0], [in_checkout, in_checkout])
        self.assertEqual(answers[1], ["/opt/coding-env/python-venv", os.path.join(hidden, ".python-runtime", "venv")])

    def test_an_unreachable_override_is_refused_with_the_reason(self) -> None:
        self.make_debian(with_cloudpickle=True)
        pyenv_python = os.path.join(self.pyenv, "bin", "python3")
        result = self.resolve(os.path.join(self.debian, "bin", "python3"), None, CODING_ENV_PYTHON=pyenv_python)
        self.assertNotIn("python", result)
        self.assertIn("cannot enter", result["error"])
        self.assertIn("apt-get install python3-cloudpickle", result["error"])


class VenvFromDebianPythonTest(RootMachineFixture):
    """The one venv this suite makes (ensurepip costs seconds of CPU): made from Debian's python
    only, in place of a broken one (its pip does not run); then, without cloudpickle in it and
    with no index for pip, a clear error.

    Made in place of a broken venv, not where there was none: the two differ only in the check of
    the venv found (whether its pip runs), and each would cost a venv of its own. The error is
    reached through the venv made before (pip retried in it); on a first run it is reached
    through a new venv whose pip finds no index: that path differs only in making the venv, which
    the first half runs, and ends in the same message."""

    RUN_FIRST = True

    def test_without_apt_get_a_venv_is_made_from_debian_python_only(self) -> None:
        debian = self.make_debian(with_cloudpickle=False)
        # A venv Debian's python made, whose pip was removed (its `pip` script left, as after
        # removing the package): made again, not retried (a pip install in it could only fail).
        self._run([debian, "-m", "venv", "--without-pip", self.venv_dir])
        self.write_pip_script()
        result = self.resolve(debian, None, PIP_FIND_LINKS=self.wheels)
        self.assertEqual(result.get("python"), os.path.join(self.venv_dir, "bin", "python"), result)
        self.assert_executor_accepts(result["python"])
        self.assert_no_venv_from_unreachable_python()

        # Nothing usable: the venv has lost cloudpickle and pip has no index (no PIP_FIND_LINKS).
        # resolvePython retries pip in the venv it finds (made from Debian's python) and makes no
        # other venv; one from pyenv's would stay behind in venv_dir and fail the last assertion.
        self.remove_cloudpickle_from_venv()
        result = self.resolve(debian, None)
        self.assertNotIn("python", result)
        message = result["error"]
        self.assertIn(f"{self.pyenv}/bin/python3: under {self.private}", message)
        self.assertIn(f"{debian}: no cloudpickle", message)
        self.assertIn("apt-get install python3-cloudpickle", message)
        self.assertIn("CODING_ENV_PYTHON", message)
        self.assert_no_venv_from_unreachable_python()

    def write_pip_script(self) -> None:
        """The console script pip installs into a venv's bin: left behind when pip is removed."""
        script = Path(self.venv_dir, "bin", "pip")
        script.write_text(
            f"#!{self.venv_dir}/bin/python\nimport re\nimport sys\nfrom pip._internal.cli.main import main\n"
            "if __name__ == '__main__':\n"
            "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
            "    sys.exit(main())\n"
        )
        script.chmod(0o755)
        probe = subprocess.run([str(script), "--version"], capture_output=True, timeout=60)
        self.assertNotEqual(probe.returncode, 0)  # the package is not there

    def remove_cloudpickle_from_venv(self) -> None:
        """As if the install had never reached an index: the venv with pip, without cloudpickle."""
        (site_packages,) = Path(self.venv_dir, "lib").glob("python3*/site-packages")
        for installed in site_packages.glob("cloudpickle*"):
            shutil.rmtree(installed)
        probe = subprocess.run(
            [os.path.join(self.venv_dir, "bin", "python"), "-c", "import cloudpickle"], capture_output=True, timeout=60
        )
        self.assertNotEqual(probe.returncode, 0)
