from sluice.api.v1alpha1 import WhenExpression
from sluice.engine.when import evaluate_when


def test_when_expressions() -> None:
    when = [WhenExpression(input="$(params.env)", operator="in", values=["prod", "staging"])]
    assert evaluate_when(when, {"params.env": "prod"}) is None
    why = evaluate_when(when, {"params.env": "dev"})
    assert why is not None and '"dev" in' in why
    notin = [WhenExpression(input="$(tasks.count.results.rows)", operator="notin", values=["0"])]
    assert evaluate_when(notin, {"tasks.count.results.rows": "0"}) is not None
    assert evaluate_when(notin, {"tasks.count.results.rows": "12"}) is None
