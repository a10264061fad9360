from sluice.engine.blocked import Refusal, blocked_conditions, is_blocked, unblocked_conditions
from sluice.kube import ApiError
from tests.builders import T0

RBAC = (
    'pods "x" is forbidden: User "system:serviceaccount:sluice:sluice" cannot delete resource "pods" '
    'in API group "" in the namespace "etl"'
)
QUOTA = 'pods "x" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=10, limited: pods=10'


def refusal(status: int, method: str, path: str, message: str) -> Refusal:
    error = ApiError(status, "Forbidden", message, method, path)
    return Refusal(error.status, error.verb, error.resource, "etl", error.message)


def test_a_missing_permission_names_the_verb_the_resource_and_the_fix() -> None:
    missing = refusal(403, "DELETE", "/api/v1/namespaces/etl/pods/x", RBAC)
    assert missing.by_rbac and missing.reason == "Forbidden"
    text = missing.describe()
    assert text.startswith('the operator may not delete pods in namespace "etl"')
    assert "RBAC" in text


def test_a_quota_refusal_is_not_blamed_on_rbac() -> None:
    quota = refusal(403, "POST", "/api/v1/namespaces/etl/pods", QUOTA)
    assert not quota.by_rbac
    assert quota.describe().startswith("the API server refused to create pods")
    assert "exceeded quota" in quota.describe()


def test_status_subresources_and_lists_are_named_as_rbac_names_them() -> None:
    status = refusal(403, "PATCH", "/apis/sluice.dev/v1alpha1/namespaces/etl/pipelineruns/r/status", "m")
    assert (status.verb, status.resource) == ("patch", "pipelineruns/status")
    listing = refusal(
        403, "GET", "/apis/sluice.dev/v1alpha1/namespaces/etl/pipelineruns?labelSelector=a", "m"
    )
    assert (listing.verb, listing.resource) == ("list", "pipelineruns")
    one = refusal(403, "GET", "/api/v1/namespaces/etl/pods/x", "m")
    assert (one.verb, one.resource) == ("get", "pods")
    invalid = refusal(422, "POST", "/apis/sluice.dev/v1alpha1/namespaces/etl/pipelineruns", "spec: bad")
    assert invalid.reason == "Invalid" and "spec: bad" in invalid.describe()


def test_blocked_turns_false_once_a_pass_completes_and_not_before() -> None:
    missing = refusal(403, "DELETE", "/api/v1/namespaces/etl/pods/x", RBAC)
    conditions = blocked_conditions(None, missing, T0)
    assert is_blocked(conditions)
    cleared = unblocked_conditions(conditions, T0)
    assert cleared is not None and not is_blocked(cleared)
    assert [(c.type, c.status, c.reason) for c in cleared] == [
        ("Blocked", "False", "Unblocked"),
        ("Ready", "Unknown", "Unknown"),
    ]
    assert unblocked_conditions(cleared, T0) is None  # nothing to clear: no write
