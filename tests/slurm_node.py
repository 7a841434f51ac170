"""A real single-node SLURM for the tests, started and stopped as /work/shared/SLURM.md found works.

munged runs as the munge user (it refuses root); slurmctld and slurmd run as root from a
``slurm.conf`` in a temporary folder that clients find through ``SLURM_CONF``. The node is
this host's short name at the address 127.0.0.1, so the hostname never has to resolve, and
free ports, so another SLURM on the machine is left alone. Only daemons this module started
are stopped, by the PID in their pid file, after checking the PID still is that daemon.
"""

import os
import shutil
import socket
import subprocess
import time
from datetime import datetime
from pathlib import Path

NODE = socket.gethostname().split(".")[0]  # slurmctld only runs on the host its SlurmctldHost names
PARTITION = "grading"
NEEDED = ("slurmctld", "slurmd", "sbatch", "scontrol", "munged", "munge", "unmunge")
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE"}


def binary(name: str) -> str:
    """The daemons live in /usr/sbin, which a non-login root shell may not have on PATH."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin") or name


def unavailable():
    """Why this machine cannot run the SLURM test (one line naming what to install), or None."""
    missing = [name for name in NEEDED if binary(name) == name]
    if missing:
        return f"needs {', '.join(missing)}: apt-get install -y slurm-wlm munge (as root; `make test` does it)"
    if os.geteuid() != 0:
        return "slurmd must run as root for the single-node SLURM test"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(what: str, test, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not test():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def alive(pid: int, name: str) -> bool:
    """``pid`` is a running (not zombie) process called ``name``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    command, state = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2]
    return command == name[:15] and state != "Z"


def epoch(stamp: str) -> float:
    """scontrol's local time (``2026-12-06T17:40:12``, to the second) as seconds since the epoch."""
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S").timestamp()


def read_pid(path: Path):
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def config(root: Path, ctld_port: int, slurmd_port: int) -> str:
    memory = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 - 1024  # MemTotal in MB, a bit under
    return f"""ClusterName=maskgit
SlurmctldHost={NODE}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
MinJobAge=300
ReturnToService=2
MailProg=/bin/true
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
NodeName={NODE} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={memory} State=UNKNOWN
PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


class SlurmNode:
    """``with SlurmNode(tmp) as node:`` a running slurmctld + slurmd (+ munged if none ran); ``node.env`` for clients."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.started = []  # (pid file, daemon name) of what this object started, stopped in reverse order
        self.env = dict(os.environ, SLURM_CONF=str(self.root / "slurm.conf"))

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}\n{self.logs()}")
        return done

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in sorted(self.root.glob("*.log")))

    def munge_works(self) -> bool:
        encoded = subprocess.run(["munge", "-n"], capture_output=True)
        return encoded.returncode == 0 and subprocess.run(["unmunge"], input=encoded.stdout, capture_output=True).returncode == 0

    def start_munge(self) -> None:
        if self.munge_works():  # a munged is already serving this machine: use it, leave it running
            return
        run = Path("/run/munge")
        run.mkdir(exist_ok=True)
        shutil.chown(run, "munge", "munge")
        key = Path("/etc/munge/munge.key")
        shutil.chown(key, "munge", "munge")
        key.chmod(0o400)
        subprocess.run([binary("runuser"), "-u", "munge", "--", binary("munged")], check=True, capture_output=True)
        self.started.append((run / "munged.pid", "munged"))
        wait_for("munged", self.munge_works, 20)

    def __enter__(self):
        if self.root.exists():
            shutil.rmtree(self.root)  # old state (another ClusterName) makes slurmctld exit
        for folder in ("state", "spool"):
            (self.root / folder).mkdir(parents=True)
        (self.root / "slurm.conf").write_text(config(self.root, free_port(), free_port()))
        try:
            self.start_munge()
            subprocess.run([binary("slurmctld")], env=self.env, check=True, capture_output=True)
            self.started.append((self.root / "slurmctld.pid", "slurmctld"))
            wait_for("slurmctld", lambda: "UP" in self.run("scontrol", "ping", check=False).stdout)
            subprocess.run([binary("slurmd"), "-N", NODE], env=self.env, check=True, capture_output=True)
            self.started.append((self.root / "slurmd.pid", "slurmd"))
            wait_for("the node", self.node_idle)
        except BaseException:
            self.stop()
            raise
        return self

    def node_idle(self) -> bool:
        state = self.run("sinfo", "-h", "-n", NODE, "-o", "%t", check=False).stdout.strip()
        if state.startswith(("down", "drain")):
            self.run("scontrol", "update", f"nodename={NODE}", "state=resume", check=False)
        return state == "idle"

    def stop(self) -> None:
        for pid_file, name in reversed(self.started):
            pid = read_pid(pid_file)
            if pid and alive(pid, name):
                os.kill(pid, 15)
                try:
                    wait_for(f"{name} to stop", lambda: not alive(pid, name), 20)  # a zombie counts as gone
                except RuntimeError:
                    os.kill(pid, 9)
        self.started.clear()

    def __exit__(self, *exc):
        self.stop()

    def job_records(self, job: str) -> dict:
        """task (or job) id → scontrol's fields (JobState, StartTime, EndTime, …), for every record of ``job`` (an
        array has one per task)."""
        out = self.run("scontrol", "show", "job", "-o", job, check=False).stdout
        records = {}
        for line in out.splitlines():
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            records[fields.get("ArrayTaskId", fields.get("JobId"))] = fields
        return records

    def job_states(self, job: str) -> dict:
        """task (or job) id → state, for every record of ``job``."""
        return {task: fields.get("JobState") for task, fields in self.job_records(job).items()}

    def wait_jobs(self, jobs: list, timeout: float) -> dict:
        """Wait until every record of ``jobs`` is in a final state; return job → its task states."""
        final = {}

        def done():
            final.update({job: self.job_states(job) for job in jobs})
            return all(states and set(states.values()) <= TERMINAL for states in final.values())

        wait_for(f"jobs {jobs}", done, timeout)
        return final
