"""A local S3-compatible server for tests and `make s3-start`: moto's standalone server.

    python -m movierec.s3_server start|stop|status|env

`start` runs `python -m moto.server` on 127.0.0.1 (a free port) with
`INITIAL_NO_AUTH_ACTION_COUNT=3`: the first three requests (create an IAM user, its access
key, its policy allowing s3:*) are the only ones moto lets through unsigned; every later
request must be signed with that generated key, so a wrong key or secret is refused as AWS
would refuse it. The key goes to a shared credentials file (mode 0600) under
`<run_dir>/s3/`, read through the standard AWS chain (`AWS_SHARED_CREDENTIALS_FILE`,
`AWS_PROFILE`); `env` prints those variables and the endpoint, never the secret.

moto keeps everything in memory: a stopped (or crashed) server forgets its buckets and
builds, and `make artifacts` must publish again.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from movierec.redis_server.files import write_private
from movierec.redis_server.process import pick_free_port
from movierec.settings import get_settings

HOST = "127.0.0.1"
PROFILE = "movierec-local"
REGION = "us-east-1"
DEFAULT_BUCKET = "movierec"
DEFAULT_PREFIX = "artifacts"
START_TIMEOUT_S = 60.0
_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}


@dataclass(frozen=True)
class LocalS3:
    """A running local server (state.json): no secret in here, only the file holding it."""

    pid: int
    port: int
    bucket: str
    credentials_file: str

    @property
    def endpoint_url(self) -> str:
        """http://127.0.0.1:PORT."""
        return f"http://{HOST}:{self.port}"

    def storage_uri(self, prefix: str = DEFAULT_PREFIX) -> str:
        """`s3://<bucket>/<prefix>`."""
        return f"s3://{self.bucket}/{prefix}".rstrip("/")

    def env(self, prefix: str = DEFAULT_PREFIX) -> dict[str, str]:
        """The variables that point the AWS chain and movierec at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_SHARED_CREDENTIALS_FILE": self.credentials_file,
            "AWS_PROFILE": PROFILE,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
            "MOVIEREC_STORAGE_URI": self.storage_uri(prefix),
        }


def _dir(run_dir: Path) -> Path:
    out = Path(run_dir) / "s3"
    out.mkdir(parents=True, exist_ok=True)
    return out


def _is_moto(pid: int) -> bool:
    try:
        return b"moto.server" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/moto-api/", timeout=2):
            return True
    except OSError:
        return False


def running(run_dir: Path) -> LocalS3 | None:
    """The server recorded under `run_dir`, if it is alive and answering."""
    try:
        state = LocalS3(**json.loads((_dir(run_dir) / "state.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return state if _is_moto(state.pid) and _answers(state.port) else None


def start(run_dir: Path, bucket: str = DEFAULT_BUCKET) -> LocalS3:
    """Starts the server (or returns the running one) with a generated key and a bucket.

    Raises:
        RuntimeError: The server did not answer within `START_TIMEOUT_S`.
    """
    current = running(run_dir)
    if current is not None:
        return current
    import boto3

    folder = _dir(run_dir)
    port = pick_free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
    for name in ("AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL"):
        env.pop(name, None)
    with (folder / "moto.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the local S3 server did not start; see {folder / 'moto.log'}")
        time.sleep(0.1)
    url = f"http://{HOST}:{port}"
    # The three unsigned requests moto allows: a user, its key, its policy.
    iam = boto3.client(
        "iam",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",  # noqa: S106 - moto ignores the first 3 signatures
    )
    iam.create_user(UserName="movierec")
    key = iam.create_access_key(UserName="movierec")["AccessKey"]
    iam.put_user_policy(UserName="movierec", PolicyName="s3", PolicyDocument=json.dumps(_POLICY))
    credentials = folder / "credentials"
    write_private(
        credentials,
        f"[{PROFILE}]\naws_access_key_id = {key['AccessKeyId']}\n"
        f"aws_secret_access_key = {key['SecretAccessKey']}\n",
    )
    state = LocalS3(process.pid, port, bucket, str(credentials))
    session = boto3.session.Session(profile_name=None)
    s3 = session.client(
        "s3",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
    )
    s3.create_bucket(Bucket=bucket)
    write_private(folder / "state.json", json.dumps(asdict(state)))
    return state


def stop(run_dir: Path) -> bool:
    """Stops the recorded server (only it: its pid, checked to be moto's); whether one ran."""
    path = _dir(run_dir) / "state.json"
    try:
        pid = int(json.loads(path.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    stopped = False
    if _is_moto(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            if not _is_moto(pid):
                break
            time.sleep(0.1)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        stopped = True
    path.unlink(missing_ok=True)
    return stopped


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m movierec.s3_server", description=__doc__)
    parser.add_argument("command", choices=("start", "stop", "status", "env"))
    parser.add_argument("--run-dir", type=Path, default=None)
    parser.add_argument("--bucket", default=DEFAULT_BUCKET)
    parser.add_argument("--prefix", default=DEFAULT_PREFIX)
    args = parser.parse_args(argv)
    run_dir = args.run_dir or get_settings().run_dir
    if args.command == "start":
        state = start(run_dir, args.bucket)
        print(f"local S3 at {state.endpoint_url} (pid {state.pid}), bucket {state.bucket}")
        print(f'use it: eval "$({sys.executable} -m movierec.s3_server env)"')
        return 0
    if args.command == "stop":
        print("local S3 stopped" if stop(run_dir) else "local S3 is not running")
        return 0
    state_or_none = running(run_dir)
    if state_or_none is None:
        print("local S3 is not running", file=sys.stderr)
        return 3
    if args.command == "status":
        print(f"local S3 at {state_or_none.endpoint_url} (pid {state_or_none.pid})")
        return 0
    for name, value in state_or_none.env(args.prefix).items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
