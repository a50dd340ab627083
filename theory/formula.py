"""Parse a user's activation formula into a sympy expression in ``x``: data, never code.

The text is parsed by Python's ``ast`` into a syntax tree (nothing is evaluated) and the tree is
walked node by node; only these nodes are accepted:

- the symbol ``x``, the constants ``pi`` and ``e``, and declared parameters;
- int and float literals;
- ``+ - * / **`` (``^`` is read as power) and unary ``+ -``;
- calls of allow-listed functions by bare name, positional arguments only;
- comparisons (``x < 0``) only as the first argument of ``where(cond, a, b)``.

Anything else (attributes, subscripts, strings, lambdas, keyword arguments, unknown names) is
rejected with a FormulaError that names it.
"""
from __future__ import annotations

import ast

import sympy as sp

x = sp.Symbol("x", real=True)

MAX_LENGTH = 500
MAX_DEPTH = 40


class FormulaError(ValueError):
    """A user formula that is not allowed or cannot be parsed."""


def _sigmoid(u):
    return 1 / (1 + sp.exp(-u))


def _softplus(u):
    return sp.log(1 + sp.exp(u))


def _abs(u):
    return sp.Piecewise((-u, u < 0), (u, True))


def _max(a, b):
    return sp.Piecewise((b, a < b), (a, True))


def _min(a, b):
    return sp.Piecewise((a, a < b), (b, True))


FUNCTIONS = {
    "exp": (sp.exp, 1), "log": (sp.log, 1), "sqrt": (sp.sqrt, 1),
    "tanh": (sp.tanh, 1), "sinh": (sp.sinh, 1), "cosh": (sp.cosh, 1),
    "sin": (sp.sin, 1), "cos": (sp.cos, 1), "atan": (sp.atan, 1), "arctan": (sp.atan, 1),
    "erf": (sp.erf, 1), "erfc": (sp.erfc, 1),
    "sigmoid": (_sigmoid, 1), "softplus": (_softplus, 1),
    "abs": (_abs, 1), "max": (_max, 2), "min": (_min, 2),
    "where": (None, 3),
}
CONSTANTS = {"pi": sp.pi, "e": sp.E}
_BINOPS = {
    ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b, ast.Pow: lambda a, b: a ** b,
}
_CMPS = {ast.Lt: sp.Lt, ast.LtE: sp.Le, ast.Gt: sp.Gt, ast.GtE: sp.Ge}


def allowed_summary() -> str:
    return ("allowed: x, numbers, + - * / ** ^, constants pi e, functions "
            + ", ".join(sorted(FUNCTIONS)) + " (where(cond, a, b) with cond like x < 0)")


def parse_formula(text: str, params: dict[str, float] | None = None) -> sp.Expr:
    """The sympy expression of ``text``; raises FormulaError naming what is not allowed."""
    if not isinstance(text, str):
        raise FormulaError(f"a formula must be a string, got {type(text).__name__}")
    src = text.strip()
    if not src:
        raise FormulaError("empty formula; " + allowed_summary())
    if len(src) > MAX_LENGTH:
        raise FormulaError(f"formula is {len(src)} characters long; at most {MAX_LENGTH} are allowed")
    if src.count("(") > MAX_DEPTH:
        raise FormulaError(f"formula nests more than {MAX_DEPTH} parentheses; too deep")
    try:
        tree = ast.parse(src.replace("^", "**"), mode="eval")
    except SyntaxError as exc:
        raise FormulaError(f"formula {text!r} is not a valid expression ({exc.msg}); {allowed_summary()}") from None
    except (ValueError, RecursionError, MemoryError):
        raise FormulaError(f"formula {text!r} cannot be parsed; {allowed_summary()}") from None
    walker = _Walker(params or {}, text)
    expr = walker.visit(tree.body, 0)
    if not isinstance(expr, sp.Expr) or isinstance(expr, (sp.core.relational.Relational, sp.logic.boolalg.BooleanAtom)):
        raise FormulaError(f"formula {text!r} is not an expression in x")
    if not expr.has(x):
        raise FormulaError(f"formula {text!r} does not depend on x; an activation must be a function of x")
    if expr.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        raise FormulaError(f"formula {text!r} is undefined (it contains a division by zero or infinity)")
    return expr


class _Walker:
    def __init__(self, params: dict[str, float], text: str):
        self.params = {k: sp.nsimplify(v) for k, v in params.items()}
        self.text = text

    def fail(self, what: str):
        raise FormulaError(f"formula {self.text!r}: {what} is not allowed; {allowed_summary()}")

    def visit(self, node, depth: int, allow_cmp: bool = False):
        if depth > MAX_DEPTH:
            raise FormulaError(f"formula {self.text!r} nests deeper than {MAX_DEPTH} levels; too deep")
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                self.fail(f"the literal {node.value!r}")
            if isinstance(node.value, float) and node.value != node.value:
                self.fail("nan")
            return sp.nsimplify(node.value) if isinstance(node.value, float) else sp.Integer(node.value)
        if isinstance(node, ast.Name):
            if node.id == "x":
                return x
            if node.id in CONSTANTS:
                return CONSTANTS[node.id]
            if node.id in self.params:
                return self.params[node.id]
            if node.id in FUNCTIONS:
                self.fail(f"the function name '{node.id}' without a call")
            self.fail(f"the name '{node.id}' (only x and declared parameters are variables)")
        if isinstance(node, ast.BinOp):
            op = _BINOPS.get(type(node.op))
            if op is None:
                self.fail(f"the operator {type(node.op).__name__}")
            a, b = self.visit(node.left, depth + 1), self.visit(node.right, depth + 1)
            if isinstance(node.op, ast.Pow) and b.is_number and abs(float(b)) > 64:
                self.fail(f"the exponent {b}")
            return op(a, b)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.USub):
                return -self.visit(node.operand, depth + 1)
            if isinstance(node.op, ast.UAdd):
                return self.visit(node.operand, depth + 1)
            self.fail(f"the operator {type(node.op).__name__}")
        if isinstance(node, ast.Compare):
            if not allow_cmp:
                self.fail("a comparison outside where(cond, a, b)")
            if len(node.ops) != 1 or type(node.ops[0]) not in _CMPS:
                self.fail("a chained or equality comparison")
            return _CMPS[type(node.ops[0])](self.visit(node.left, depth + 1),
                                            self.visit(node.comparators[0], depth + 1))
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                self.fail("calling anything but an allow-listed function by name (attribute access)")
            fname = node.func.id
            if fname not in FUNCTIONS:
                self.fail(f"the function '{fname}'")
            if node.keywords:
                self.fail("keyword arguments")
            fn, arity = FUNCTIONS[fname]
            if len(node.args) != arity:
                raise FormulaError(f"formula {self.text!r}: {fname} takes {arity} argument(s), got {len(node.args)}")
            if fname == "where":
                cond = self.visit(node.args[0], depth + 1, allow_cmp=True)
                if not isinstance(cond, sp.core.relational.Relational):
                    self.fail("a where() whose first argument is not a comparison")
                a, b = (self.visit(n, depth + 1) for n in node.args[1:])
                return sp.Piecewise((a, cond), (b, True))
            args = [self.visit(n, depth + 1) for n in node.args]
            return fn(*args)
        if isinstance(node, ast.Attribute):
            self.fail(f"attribute access ('.{node.attr}')")
        if isinstance(node, ast.Lambda):
            self.fail("lambda")
        if isinstance(node, ast.Subscript):
            self.fail("subscripts")
        self.fail(f"the syntax {type(node).__name__}")
