"""The hostile suite shares the guard tests' reaper: every cm-guard a test starts is
gone after it, passed or failed."""

from tests.test_guard import reap_guards  # noqa: F401  (an autouse fixture, used by name)
