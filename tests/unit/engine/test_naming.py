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


def test_pipelines_sharing_a_long_prefix_never_share_a_run_name() -> None:
    prefix = "nightly-warehouse-load-for-the-finance-department"  # 49 characters
    moment = utc(2026, 10, 25, 0, 0)
    names = {scheduled_run_name(prefix + suffix, moment) for suffix in ("-eu", "-us", "-eu-x", "-asia-pac")}
    assert len(names) == 4
    for name in names:
        assert len(name) <= 63 and name.endswith("-202610250000")
        assert name[0].isalnum() and name[-1].isalnum() and name == name.lower()
    # Stable: the same pipeline and instant give the same name in every process.
    assert scheduled_run_name(prefix + "-eu", moment) in names
    assert scheduled_run_name(prefix + "-eu", moment) == scheduled_run_name(prefix + "-eu", moment)


def test_a_name_that_fits_keeps_the_plain_form_runs_already_have() -> None:
    fits = "p" * 50  # 50 + 1 + 12 = 63
    assert scheduled_run_name(fits, utc(2026, 1, 2, 3, 4)) == fits + "-202601020304"
    assert scheduled_run_name(fits + "q", utc(2026, 1, 2, 3, 4)) != fits + "-202601020304"
