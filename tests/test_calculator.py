import pytest

from bulwark.tools.calculator import CalculatorError, evaluate


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("17*23", 391),
        ("2*(3+4)", 14),
        ("2^10", 1024),
        ("7/2", 3.5),
        ("-3 + 5 % 3", -1),
        ("sqrt(16) + abs(-2)", 6),
        ("3 × 4 ÷ 2", 6),
        ("round(pi, 2)", 3.14),
    ],
)
def test_evaluates_arithmetic(expression: str, expected: float) -> None:
    assert evaluate(expression) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os').system('true')", "unsupported"),
        ("open('/etc/passwd')", "unsupported"),
        ("(1).__class__", "unsupported"),
        ("1/0", "division by zero"),
        ("9**99999", "exponent"),
        ("2 +", "not an arithmetic expression"),
        ("", "empty"),
        ("'a' * 3", "unsupported"),
    ],
)
def test_refuses_anything_but_arithmetic(expression: str, message: str) -> None:
    with pytest.raises(CalculatorError, match=message):
        evaluate(expression)
