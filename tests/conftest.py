"""Shared test setup: offline environment, markers, ONE app server per configuration and ONE browser.

Markers (registered in pyproject.toml): ``browser`` (drives headless Chromium), ``server`` (talks to a
``python app.py`` process), ``notebook`` (executes a notebook), ``slow`` (takes more than a few
seconds on 2 cores). Tests that request the ``browser`` / ``page`` fixtures get ``browser``, tests that
request an app server fixture get ``server``, and ``browser`` / ``server`` / ``notebook`` tests also
get ``slow``, automatically. Quick loop: ``pytest -m "not slow and not browser"``.

App servers (session-scoped, started on first use, shared by every e2e module):

* :func:`app_url`: ``python app.py`` offline whose Hub cache holds synthetic weights in the official
  format for the default Hub checkpoints of the tabs (:data:`CACHED_CHECKPOINTS`); every other model
  runs untrained (or the project weights shipped in the package).
* :func:`app_url_untrained`: the same with an empty Hub cache (every official model untrained).

Browser: :func:`browser` is one headless Chromium for the whole session; a test gets a fresh context
(its own cookies, i.e. its own Gradio session) with :func:`page` or ``appfiles.browser_page(browser)``.
Playwright's sync API marks an asyncio loop as running in the main thread while it is open, so
``asyncio.run`` (nbclient, ...) fails after it started: the modules that use it run last
(:func:`pytest_collection_modifyitems`), after every other test.
"""
import os
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/hubcache.py, appfiles.py, goldens.py

#: Seconds an app server may take to answer after ``python app.py`` starts (every tab is built; cold
#: imports on a busy 2-core machine).
START_TIMEOUT_S = 300
#: Playwright's ``expect`` timeout for the session (ms): a model run on a busy CPU takes tens of seconds.
EXPECT_TIMEOUT_MS = 120_000
#: Hub files (repo_id, filename, reference variant, mmseg-style container) in :func:`app_url`'s cache.
CACHED_CHECKPOINTS = (
    ("Sense-X/uniformer_image", "uniformer_small_in1k.pth", "image_s", False),
    ("Andy1621/uniformer_light", "uniformer_xxs_160_in1k.pth", "light_xxs", False),
    ("Sense-X/uniformer_video", "uniformer_small_k400_16x8.pth", "video_s16", False),
    ("Andy1621/uniformer", "upernet_global_small.pth", "upernet_global_small", True),
)
#: App-server configuration of each server fixture (see :func:`app_servers`).
SERVER_FIXTURES = {"app_url": "cached", "app_url_untrained": "untrained"}
BROWSER_FIXTURES = {"browser", "page"}
NOTEBOOK_FIXTURES = {"kernel_name"}  # tests/test_notebooks.py: the tests that execute a notebook
_SERVERS_NEEDED = pytest.StashKey[set]()


def pytest_collection_modifyitems(config, items):
    """Add the implied markers (from each test's whole fixture closure; this runs before ``-m``
    selects), then move the modules that use the session browser to the end (stable: the order
    inside each group is kept, so every module stays in one piece). Modules that start their own
    Chromium (appfiles.chromium_browser) thus run before it, as Playwright's sync API requires."""
    shared_browser_modules = set()
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)
            if _uses_session_browser(item):
                shared_browser_modules.add(item.nodeid.split("::")[0])
        if names & SERVER_FIXTURES.keys():
            item.add_marker(pytest.mark.server)
        if names & NOTEBOOK_FIXTURES:
            item.add_marker(pytest.mark.notebook)
        if any(item.get_closest_marker(m) for m in ("browser", "server", "notebook")):
            item.add_marker(pytest.mark.slow)
    items[:] = sorted(items, key=lambda item: item.nodeid.split("::")[0] in shared_browser_modules)


def _uses_session_browser(item) -> bool:
    """Whether ``item``'s ``browser`` fixture is this file's session browser (a module may define its
    own ``browser``: it then starts and stops Playwright itself, which must happen before the session
    browser starts)."""
    info = getattr(item, "_fixtureinfo", None)
    definitions = info.name2fixturedefs.get("browser", ()) if info is not None else ()
    return bool(definitions) and definitions[-1].func.__module__ == __name__ and definitions[-1].argname == "browser"


def pytest_collection_finish(session):
    """Note which app-server configurations the selected tests need (started together on first use)."""
    session.config.stash[_SERVERS_NEEDED] = {
        SERVER_FIXTURES[name] for item in session.items for name in getattr(item, "fixturenames", ())
        if name in SERVER_FIXTURES}


def _hf_home(tmp: Path, config: str) -> Path:
    """An HF_HOME for ``config``: 'cached' holds :data:`CACHED_CHECKPOINTS`, 'untrained' nothing."""
    from hubcache import add_to_hub_cache, load_spec, load_synth

    home = tmp / config / "hf_home"
    home.mkdir(parents=True)
    if config == "cached":
        synth = load_synth()
        for repo_id, filename, variant, mm_format in CACHED_CHECKPOINTS:
            state_dict = synth.synthesize(load_spec(variant)["keys"])
            obj = {"meta": {"mmseg_version": "0.13.0"}, "state_dict": state_dict} if mm_format else state_dict
            add_to_hub_cache(home, repo_id, filename, obj)
            del state_dict, obj
    return home


class _AppServers:
    """The session's app servers by configuration: every configuration the selected tests need is
    started at once on first use (cold starts overlap), any other on demand."""

    def __init__(self, tmp: Path, needed: set[str], stack: ExitStack):
        self.tmp, self.needed, self.stack, self.started = tmp, needed, stack, {}

    def _start(self, config: str) -> None:
        from appfiles import app_server

        home = _hf_home(self.tmp, config)
        process, url = self.stack.enter_context(app_server(home, home.parent / "app.log"))
        self.started[config] = (process, url, home.parent / "app.log", False)

    def url(self, config: str) -> str:
        from appfiles import wait_until_up

        for name in sorted(self.needed | {config}):
            if name not in self.started:
                self._start(name)
        process, url, log, up = self.started[config]
        if not up:
            wait_until_up(process, url, log, START_TIMEOUT_S)
            self.started[config] = (process, url, log, True)
        return url


@pytest.fixture(scope="session")
def app_servers(tmp_path_factory, request):
    """The session's :class:`_AppServers` (use :func:`app_url` / :func:`app_url_untrained`)."""
    with ExitStack() as stack:
        yield _AppServers(tmp_path_factory.mktemp("apps"), request.config.stash.get(_SERVERS_NEEDED, set()), stack)


@pytest.fixture(scope="session")
def app_url(app_servers):
    """URL of the shared ``python app.py`` whose offline Hub cache holds :data:`CACHED_CHECKPOINTS`
    (synthetic weights, official format). Do not change its shared state in a test (a download, or
    making an upload the shared model); per-session uploads are fine."""
    return app_servers.url("cached")


@pytest.fixture(scope="session")
def app_log(app_servers, app_url):
    """The log file (stdout + stderr) of the :func:`app_url` server."""
    return app_servers.started["cached"][2]


@pytest.fixture(scope="session")
def app_url_untrained(app_servers):
    """URL of the shared ``python app.py`` with an empty offline Hub cache: every official model
    runs untrained and says so."""
    return app_servers.url("untrained")


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium (Playwright, /usr/bin/chromium) for the session; fails (never skips)
    when Chromium is missing."""
    from appfiles import chromium_browser

    with chromium_browser(expect_timeout_ms=EXPECT_TIMEOUT_MS) as shared:
        yield shared


@pytest.fixture
def page(browser):
    """A page in a fresh browser context (1400 x 1000 pixels, 60 s action timeout), closed after the test."""
    from appfiles import browser_page

    with browser_page(browser) as p:
        yield p
