from datetime import UTC, datetime

from sluice.engine.naming import attempt_name, label_value, scheduled_run_name


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_attempt_names_are_deterministic_bounded_and_distinct() -> None:
    assert attempt_name("r", "u1", "extract") == attempt_name("r", "u1", "extract")
    assert attempt_name("r", "u1", "extract") != attempt_name("r", "u2", "extract")
    # "a-b"+"c" and "a"+"b-c" read alike but must not collide.
    assert attempt_name("a-b", "u", "c") != attempt_name("a", "u", "b-c")
    long = attempt_name("r" * 63, "u", "t" * 63)
    assert len(long) <= 63
    assert long[0].isalnum() and long[-1].isalnum()


def test_label_values_fit_the_63_character_limit() -> None:
    assert label_value("short") == "short"
    value = label_value("p" * 200)
    assert len(value) <= 63
    assert value != label_value("p" * 199)


def test_run_names_are_deterministic_and_bounded() -> None:
    assert scheduled_run_name("sales", utc(2026, 1, 2, 3, 4)) == "sales-202601020304"
    long = scheduled_run_name("p" * 63, utc(2026, 1, 2, 3, 4))
    assert len(long) <= 63
    assert long.endswith("-202601020304")
