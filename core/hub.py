"""Talking to the model hub: a quick reachability probe, and quiet loading.

With no network, huggingface_hub retries each file for half a minute and prints a line per retry
before it fails. One short request to the hub endpoint, made once per process, tells the same in a
second or two, so a hub id that is not cached fails at once and a cached one loads offline.

transformers prints "Loading weights" progress bars and advisory log lines on every load. The
Python API keeps them quiet unless asked (`verbose=True`), switching them off only while a load
runs and restoring them afterwards. README: "Loading a model, and what it refuses".
"""

import os
import threading
from contextlib import contextmanager

PROBE_TIMEOUT = 1.5  # seconds; a hub that answers at all answers a HEAD request in well under this

_probe_lock = threading.Lock()
_probed: dict[str, bool] = {}


def hub_is_offline() -> bool:
    """True when the user asked huggingface_hub to stay offline (HF_HUB_OFFLINE=1)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_endpoint() -> str:
    """The endpoint huggingface_hub talks to (HF_ENDPOINT, read when it was imported)."""
    from huggingface_hub import constants

    return constants.ENDPOINT


def _answers(endpoint: str, timeout: float) -> bool:
    """True when a HEAD request to `endpoint` gets any HTTP answer (an error status is an answer)."""
    from huggingface_hub.utils import get_session

    try:
        get_session().head(endpoint, timeout=timeout, follow_redirects=False)
        return True
    except Exception:  # any connection, DNS, TLS or timeout failure means "not reachable"
        return False


def _probe(endpoint: str, timeout: float) -> bool:
    """`_answers` in a daemon thread, abandoned after `timeout`: a name lookup that hangs is not
    bounded by the request's own timeout."""
    result = []
    thread = threading.Thread(target=lambda: result.append(_answers(endpoint, timeout)), daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(result and result[0])


def hub_is_reachable(timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether the hub endpoint answers, asked once per process and endpoint (False when offline)."""
    if hub_is_offline():
        return False
    endpoint = hub_endpoint()
    with _probe_lock:
        if endpoint not in _probed:
            _probed[endpoint] = _probe(endpoint, timeout)
        return _probed[endpoint]


def forget_hub_probe() -> None:
    """Ask again on the next load (after the network came back, or in tests)."""
    with _probe_lock:
        _probed.clear()


def unreachable_message(name: str) -> str:
    """One line for a hub id that is neither reachable nor cached."""
    return (f"{name!r} is not in the local cache and the hub could not be reached ({hub_endpoint()} gave no "
            f"answer within {PROBE_TIMEOUT:g} s). Check your network; to work offline set HF_HUB_OFFLINE=1 and "
            "pass a local folder: model='path/to/folder' (command line: --model PATH)")


class _QuietLoading:
    """Switches transformers' and huggingface_hub's progress bars and advisory logging off while at
    least one quiet load runs, and restores what was there when the last one ends (thread-safe:
    a counter under a lock, so overlapping loads in several threads restore once)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = None

    @staticmethod
    def _switch_off():
        from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars
        from transformers.utils import logging

        saved = (logging.get_verbosity(), logging.is_progress_bar_enabled(), are_progress_bars_disabled())
        logging.set_verbosity_error()
        logging.disable_progress_bar()
        disable_progress_bars()
        return saved

    @staticmethod
    def _restore(saved):
        from huggingface_hub.utils import enable_progress_bars
        from transformers.utils import logging

        verbosity, transformers_bars, hub_bars_disabled = saved
        logging.set_verbosity(verbosity)
        if transformers_bars:
            logging.enable_progress_bar()
        if not hub_bars_disabled:
            enable_progress_bars()

    def __enter__(self):
        with self._lock:
            if self._depth == 0:
                self._saved = self._switch_off()
            self._depth += 1

    def __exit__(self, *exc_info):
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                self._restore(self._saved)


_quiet = _QuietLoading()


def quiet_process() -> None:
    """For a command-line process (nopipe, the benchmarks): no "Loading weights" bars or advisory
    warnings between the answers, for the rest of the process; errors still come through nopipe's."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


@contextmanager
def quiet_loading(verbose: bool = False):
    """Hide transformers' load progress bars and advisory warnings for the block, unless `verbose`."""
    if verbose:
        yield
        return
    with _quiet:
        yield
