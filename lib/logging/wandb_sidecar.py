"""ctclip's W&B sidecar: drives the official `wandb` client for a training run (started by rank 0's trainer,
lib/logging/wandb-sidecar.ts; protocol in docs/logging.md).

    python wandb_sidecar.py --probe   prints {"version": wandb.__version__} and exits 0, or exits 3 with the
                                      import error on stderr: whether live logging can work with this interpreter
    python wandb_sidecar.py           reads JSON lines on stdin:
                                        {"type": "init", "init": {keyword arguments of wandb.init}}   (first line)
                                        {"type": "log", "step": N, "data": {key: number}}
                                        {"type": "summary", "data": {key: value}}
                                        {"type": "finish", "exit_code": 0}
                                      and answers on stdout {"type": "ready", "id", "dir", "url", "version"} once
                                      the run is initialised, or {"type": "error", "message"} before exiting 3.

The end of stdin without a finish line means the trainer died: the run is finished with exit code 1, so what was
logged is kept. SIGINT and SIGTERM are ignored: the trainer decides when the run ends (its stop signal saves a
checkpoint first), and the end of the pipe always comes.
"""

import json
import os
import signal
import sys


def protocol_stream():
    """Our answers go to the real stdout; anything else printing to stdout (wandb's own lines) goes to stderr."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    return out


def main(argv):
    if argv[1:] == ["--probe"]:
        try:
            import wandb
        except Exception as e:  # any import failure (missing package, broken dependency) means no live logging
            sys.stderr.write(f"{type(e).__name__}: {e}\n")
            return 3
        print(json.dumps({"version": wandb.__version__}))
        return 0

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    out = protocol_stream()

    def answer(obj):
        try:
            out.write(json.dumps(obj) + "\n")
        except OSError:  # the trainer is gone; keep finishing the run
            pass

    first = sys.stdin.readline()
    try:
        msg = json.loads(first)
        if msg.get("type") != "init":
            raise ValueError(f"the first line must be an init message, got {first.strip()[:200]!r}")
        import wandb

        run = wandb.init(**msg["init"])
    except Exception as e:
        answer({"type": "error", "message": f"{type(e).__name__}: {e}"})
        return 3
    answer({"type": "ready", "id": run.id, "dir": run.dir, "url": run.url, "version": wandb.__version__})

    exit_code = 1
    for line in sys.stdin:
        try:
            msg = json.loads(line)
            kind = msg["type"]
            if kind == "log":
                run.log(msg["data"], step=msg["step"])
            elif kind == "summary":
                run.summary.update(msg["data"])
            elif kind == "finish":
                exit_code = int(msg.get("exit_code", 0))
                break
        except Exception as e:  # one bad message must not lose the run
            sys.stderr.write(f"ctclip wandb sidecar: skipped a message ({type(e).__name__}: {e})\n")
    run.finish(exit_code=exit_code)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
