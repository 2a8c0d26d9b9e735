//! The formula language read into a tree: tokens, then precedence climbing with Python's
//! precedence (`if`/`else` lowest, then `or`, `and`, `not`, comparisons, `|`, `^`, `&`,
//! shifts, `+ -`, `* / // %`, unary `- + ~`, `**`).

use super::Num;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Var {
    Time,
    Count,
    Factor,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
    Shl,
    Shr,
    BitAnd,
    BitOr,
    BitXor,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Func {
    Min,
    Max,
    Abs,
    Int,
    Float,
    Round,
    Pow,
    Exp,
    Log,
    Log2,
    Log10,
    Sqrt,
    Floor,
    Ceil,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Expr {
    Num(Num),
    Var(Var),
    Neg(Box<Expr>),
    Invert(Box<Expr>),
    Not(Box<Expr>),
    Binary(Op, Box<Expr>, Box<Expr>),
    /// `a < b <= c`: each comparison on the previous right-hand side.
    Compare(Box<Expr>, Vec<(Op, Expr)>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    IfElse {
        then: Box<Expr>,
        cond: Box<Expr>,
        otherwise: Box<Expr>,
    },
    Call(Func, Vec<Expr>),
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Token {
    Num(Num),
    Name(String),
    Sym(&'static str),
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Token::Num(Num::Int(i)) => write!(f, "{i}"),
            Token::Num(Num::Float(x)) => write!(f, "{x}"),
            Token::Name(n) => f.write_str(n),
            Token::Sym(s) => f.write_str(s),
        }
    }
}

const SYMBOLS: [&str; 24] = [
    "**", "//", "<<", ">>", "<=", ">=", "==", "!=", "+", "-", "*", "/", "%", "<", ">", "&", "|",
    "^", "~", "(", ")", ",", ".", "=",
];

pub(super) fn lex(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        let Some(c) = rest.chars().next() else {
            return Ok(tokens);
        };
        if c.is_ascii_digit() || (c == '.' && rest[1..].starts_with(|d: char| d.is_ascii_digit())) {
            let (num, len) = lex_number(rest)?;
            tokens.push(Token::Num(num));
            rest = &rest[len..];
        } else if c.is_alphabetic() || c == '_' {
            let len = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            tokens.push(Token::Name(rest[..len].to_string()));
            rest = &rest[len..];
        } else if let Some(sym) = SYMBOLS.iter().find(|s| rest.starts_with(**s)) {
            if *sym == "=" {
                return Err("`=` is no operator here (comparison is `==`)".into());
            }
            tokens.push(Token::Sym(sym));
            rest = &rest[sym.len()..];
        } else {
            return Err(format!("unexpected character `{c}`"));
        }
    }
}

fn lex_number(text: &str) -> Result<(Num, usize), String> {
    let mut len = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(text.len());
    // An exponent: `1e3`, `2.5E-2`.
    let after = &text[len..];
    if after.starts_with(['e', 'E']) {
        let exp = after[1..].strip_prefix(['+', '-']).unwrap_or(&after[1..]);
        let digits = exp.find(|c: char| !c.is_ascii_digit()).unwrap_or(exp.len());
        if digits > 0 {
            len += after.len() - exp.len() + digits;
        }
    }
    let word = text[..len].replace('_', "");
    let num = if word.contains(['.', 'e', 'E']) {
        word.parse::<f64>().map(Num::Float).ok()
    } else {
        word.parse::<i64>().map(Num::Int).ok()
    };
    num.map(|n| (n, len))
        .ok_or_else(|| format!("invalid number `{}`", &text[..len]))
}

pub(super) struct Parser {
    pub(super) tokens: Vec<Token>,
    pub(super) pos: usize,
    pub(super) vars: bool,
}

type Parsed = Result<Expr, String>;

impl Parser {
    pub(super) fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn eat_sym(&mut self, sym: &str) -> bool {
        if matches!(self.peek(), Some(Token::Sym(s)) if *s == sym) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_word(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Token::Name(n)) if n == word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_sym(&mut self, sym: &str) -> Result<(), String> {
        if self.eat_sym(sym) {
            Ok(())
        } else {
            Err(match self.peek() {
                Some(t) => format!("expected `{sym}`, found `{t}`"),
                None => format!("expected `{sym}` at the end"),
            })
        }
    }

    pub(super) fn ternary(&mut self) -> Parsed {
        let then = self.or()?;
        if !self.eat_word("if") {
            return Ok(then);
        }
        let cond = self.or()?;
        if !self.eat_word("else") {
            return Err("`if` without `else`".into());
        }
        let otherwise = self.ternary()?;
        Ok(Expr::IfElse {
            then: Box::new(then),
            cond: Box::new(cond),
            otherwise: Box::new(otherwise),
        })
    }

    fn or(&mut self) -> Parsed {
        let mut left = self.and()?;
        while self.eat_word("or") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Parsed {
        let mut left = self.not()?;
        while self.eat_word("and") {
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Parsed {
        if self.eat_word("not") {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Parsed {
        let first = self.binary(0)?;
        let mut rest = Vec::new();
        loop {
            let op = match self.peek() {
                Some(Token::Sym("<")) => Op::Lt,
                Some(Token::Sym("<=")) => Op::Le,
                Some(Token::Sym(">")) => Op::Gt,
                Some(Token::Sym(">=")) => Op::Ge,
                Some(Token::Sym("==")) => Op::Eq,
                Some(Token::Sym("!=")) => Op::Ne,
                _ => break,
            };
            self.pos += 1;
            rest.push((op, self.binary(0)?));
        }
        Ok(if rest.is_empty() {
            first
        } else {
            Expr::Compare(Box::new(first), rest)
        })
    }

    /// Binary operators from `|` (level 0) to `* / // %` (level 5), left-associative.
    fn binary(&mut self, level: usize) -> Parsed {
        const LEVELS: [&[(&str, Op)]; 6] = [
            &[("|", Op::BitOr)],
            &[("^", Op::BitXor)],
            &[("&", Op::BitAnd)],
            &[("<<", Op::Shl), (">>", Op::Shr)],
            &[("+", Op::Add), ("-", Op::Sub)],
            &[
                ("*", Op::Mul),
                ("/", Op::Div),
                ("//", Op::FloorDiv),
                ("%", Op::Mod),
            ],
        ];
        let next = |p: &mut Self| {
            if level + 1 < LEVELS.len() {
                p.binary(level + 1)
            } else {
                p.unary()
            }
        };
        let mut left = next(self)?;
        'outer: loop {
            for (sym, op) in LEVELS[level] {
                if self.eat_sym(sym) {
                    left = Expr::Binary(*op, Box::new(left), Box::new(next(self)?));
                    continue 'outer;
                }
            }
            return Ok(left);
        }
    }

    fn unary(&mut self) -> Parsed {
        if self.eat_sym("-") {
            Ok(Expr::Neg(Box::new(self.unary()?)))
        } else if self.eat_sym("+") {
            self.unary()
        } else if self.eat_sym("~") {
            Ok(Expr::Invert(Box::new(self.unary()?)))
        } else {
            self.power()
        }
    }

    fn power(&mut self) -> Parsed {
        let base = self.atom()?;
        if self.eat_sym("**") {
            // Right-associative, and binds tighter than a unary minus on its left only.
            let exponent = self.unary()?;
            return Ok(Expr::Binary(Op::Pow, Box::new(base), Box::new(exponent)));
        }
        Ok(base)
    }

    fn atom(&mut self) -> Parsed {
        match self.tokens.get(self.pos).cloned() {
            Some(Token::Num(n)) => {
                self.pos += 1;
                Ok(Expr::Num(n))
            }
            Some(Token::Sym("(")) => {
                self.pos += 1;
                let inner = self.ternary()?;
                self.expect_sym(")")?;
                Ok(inner)
            }
            Some(Token::Name(_)) => self.name(),
            Some(t) => Err(format!("unexpected `{t}`")),
            None => Err("the expression ends too early".into()),
        }
    }

    /// A dotted name: a variable, a constant or a function call.
    fn name(&mut self) -> Parsed {
        let mut dotted = String::new();
        while let Some(Token::Name(n)) = self.peek().cloned() {
            self.pos += 1;
            dotted.push_str(&n);
            if !self.eat_sym(".") {
                break;
            }
            dotted.push('.');
        }
        if self.eat_sym("(") {
            let func = function(&dotted).ok_or_else(|| format!("unknown function `{dotted}`"))?;
            let mut args = Vec::new();
            if !self.eat_sym(")") {
                loop {
                    args.push(self.ternary()?);
                    if self.eat_sym(")") {
                        break;
                    }
                    self.expect_sym(",")?;
                }
            }
            check_arity(func, &dotted, args.len())?;
            return Ok(Expr::Call(func, args));
        }
        let var = match dotted.as_str() {
            "True" => return Ok(Expr::Num(Num::Int(1))),
            "False" => return Ok(Expr::Num(Num::Int(0))),
            "math.e" => return Ok(Expr::Num(Num::Float(std::f64::consts::E))),
            "math.pi" => return Ok(Expr::Num(Num::Float(std::f64::consts::PI))),
            "ban.Time" => Var::Time,
            "ban.Count" => Var::Count,
            "banFactor" => Var::Factor,
            _ => return Err(format!("unknown name `{dotted}`")),
        };
        if !self.vars {
            return Err(format!("`{dotted}` cannot be used here"));
        }
        Ok(Expr::Var(var))
    }
}

fn function(name: &str) -> Option<Func> {
    Some(match name {
        "min" => Func::Min,
        "max" => Func::Max,
        "abs" => Func::Abs,
        "int" => Func::Int,
        "float" => Func::Float,
        "round" => Func::Round,
        "pow" | "math.pow" => Func::Pow,
        "math.exp" => Func::Exp,
        "math.log" => Func::Log,
        "math.log2" => Func::Log2,
        "math.log10" => Func::Log10,
        "math.sqrt" => Func::Sqrt,
        "math.floor" => Func::Floor,
        "math.ceil" => Func::Ceil,
        _ => return None,
    })
}

fn check_arity(func: Func, name: &str, n: usize) -> Result<(), String> {
    let ok = match func {
        Func::Min | Func::Max => n >= 1,
        Func::Pow => n == 2,
        Func::Log | Func::Round => n == 1 || n == 2,
        _ => n == 1,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("`{name}` does not take {n} argument(s)"))
    }
}
