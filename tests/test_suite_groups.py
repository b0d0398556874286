"""The suite's own scheduling: under `pytest -n N --dist loadgroup` (README's test command), the tests that share
a module- or session-scoped fixture run on one worker, so that what the fixture trains or builds is built once.
pytest-xdist groups them from marks that conftest.py adds (before xdist's own hook reads them) by rewriting node
ids, which pytest 9.2 stopped honouring (hence pyproject's pin): either slip and every test is scheduled alone."""

import pytest


@pytest.fixture(scope="module")
def shared():
  return object()


def test_tests_sharing_a_built_fixture_are_one_group_on_one_worker(shared, request):
  if not request.config.getoption("loadgroup", False):
    pytest.skip("not run by pytest-xdist with --dist loadgroup")
  # conftest.py marks the test with its fixture's group; xdist schedules by the suffix it adds to the node id.
  assert [m.args[0] for m in request.node.iter_markers("xdist_group")] == ["shared:test_suite_groups:"]
  assert request.node.nodeid.endswith("@shared:test_suite_groups:"), request.node.nodeid
