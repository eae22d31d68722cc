"""The constraints of constrained beam search, as transformers 4.55.4 defined them (generation/beam_constraints.py;
transformers 5 removed the module).

A constraint is a sequence of tokens the output must contain: `PhrasalConstraint([7, 9])` the phrase 7 9,
`DisjunctiveConstraint([[7, 9], [8]])` one of several phrases. A `ConstraintListState` follows one
hypothesis token by token: which constraints it has completed, which one it is in the middle of, and
which tokens would move it forward (`advance`). Its `bank` (progress, in tokens) is what constrained
beam search sorts candidates by.

Kept as 4.55.4 wrote it, quirks included, because they decide which beams survive: a constraint broken
half-way goes back to the pending ones without trying the breaking token again, and a stateful copy of a
disjunctive constraint shares its list of tokens so far with the original (`copy(stateful=True)`).
"""


class PhrasalConstraint:
    """The output must contain `token_ids` in a row."""

    def __init__(self, token_ids: list[int]):
        if not isinstance(token_ids, list) or len(token_ids) == 0:
            raise ValueError(f"a phrase constraint needs a non-empty list of token ids, got {token_ids!r}")
        if any(not isinstance(token_id, int) or token_id < 0 for token_id in token_ids):
            raise ValueError(f"a phrase constraint holds token ids (integers >= 0), got {token_ids!r}")
        self.token_ids = token_ids
        self.seqlen = len(token_ids)
        self.fulfilled_idx = -1  # index of the last matched token
        self.completed = False

    def advance(self):
        """The token that moves this constraint forward, None when complete."""
        return None if self.completed else self.token_ids[self.fulfilled_idx + 1]

    def does_advance(self, token_id: int) -> bool:
        return not self.completed and token_id == self.token_ids[self.fulfilled_idx + 1]

    def update(self, token_id: int) -> tuple[bool, bool, bool]:
        """Feed a token: (stepped, completed, reset)."""
        if self.does_advance(token_id):
            self.fulfilled_idx += 1
            self.completed = self.fulfilled_idx == self.seqlen - 1
            return True, self.completed, False
        self.reset()
        return False, False, True

    def reset(self) -> None:
        self.completed = False
        self.fulfilled_idx = 0  # sic: 4.55.4 resets to 0, not -1 (the reset object is then always discarded)

    def remaining(self) -> int:
        return self.seqlen - (self.fulfilled_idx + 1)

    def copy(self, stateful: bool = False) -> "PhrasalConstraint":
        new = PhrasalConstraint(self.token_ids)
        if stateful:
            new.fulfilled_idx, new.completed = self.fulfilled_idx, self.completed
        return new


def build_trie(nested_token_ids: list[list[int]]) -> dict:
    """The phrases as a prefix tree {token: subtree}; a phrase that is a prefix of another is refused."""
    root: dict = {}
    for token_ids in nested_token_ids:
        level = root
        for token_id in token_ids:
            level = level.setdefault(token_id, {})
    if count_leaves(root) != len(nested_token_ids):
        raise ValueError("in a disjunctive constraint no phrase may be the start of another (or repeat one), "
                         f"got {nested_token_ids!r}")
    return root


def count_leaves(trie: dict) -> int:
    return 1 if not trie else sum(count_leaves(child) for child in trie.values())


def trie_next_tokens(trie: dict, current_seq: list[int]) -> list[int]:
    for token in current_seq:
        trie = trie[token]
    return list(trie.keys())


class DisjunctiveConstraint:
    """The output must contain one of the phrases `nested_token_ids`."""

    def __init__(self, nested_token_ids: list[list[int]]):
        if not isinstance(nested_token_ids, list) or len(nested_token_ids) == 0:
            raise ValueError(f"a disjunctive constraint needs a non-empty list of phrases, got {nested_token_ids!r}")
        if any(not isinstance(token_ids, list) for token_ids in nested_token_ids):
            raise ValueError(f"a disjunctive constraint is a list of lists of token ids, got {nested_token_ids!r}")
        if any(any(not isinstance(t, int) or t < 0 for t in token_ids) for token_ids in nested_token_ids):
            raise ValueError(f"a disjunctive constraint holds token ids (integers >= 0), got {nested_token_ids!r}")
        self.trie = build_trie(nested_token_ids)
        self.token_ids = nested_token_ids
        self.seqlen = max(len(one) for one in nested_token_ids)
        self.current_seq: list[int] = []
        self.completed = False

    def advance(self):
        tokens = trie_next_tokens(self.trie, self.current_seq)
        return tokens or None

    def does_advance(self, token_id: int) -> bool:
        return token_id in trie_next_tokens(self.trie, self.current_seq)

    def update(self, token_id: int) -> tuple[bool, bool, bool]:
        stepped = reset = False
        if self.does_advance(token_id):
            self.current_seq.append(token_id)
            stepped = True
        else:
            reset = True
            self.reset()
        self.completed = not trie_next_tokens(self.trie, self.current_seq)
        return stepped, self.completed, reset

    def reset(self) -> None:
        self.completed = False
        self.current_seq = []

    def remaining(self) -> int:
        return 0 if self.completed else self.seqlen - len(self.current_seq)

    def copy(self, stateful: bool = False) -> "DisjunctiveConstraint":
        new = DisjunctiveConstraint(self.token_ids)
        if stateful:
            new.current_seq = self.current_seq  # sic: shared, not copied, as in 4.55.4
            new.completed = self.completed
        return new


class ConstraintListState:
    """How far one hypothesis is through all the constraints."""

    def __init__(self, constraints: list):
        self.constraints = constraints
        self.max_seqlen = max(c.seqlen for c in constraints)
        self.completed = False
        self.init_state()

    def init_state(self) -> None:
        self.complete_constraints: list = []
        self.inprogress_constraint = None
        self.pending_constraints = [constraint.copy(stateful=False) for constraint in self.constraints]

    def get_bank(self) -> int:
        """Progress in tokens: max_seqlen per completed constraint, plus the matched part of the one in progress."""
        partial = self.max_seqlen - self.inprogress_constraint.remaining() if self.inprogress_constraint else 0
        return len(self.complete_constraints) * self.max_seqlen + partial

    def advance(self):
        """The tokens that would make progress (those of the constraint in progress, else of every pending one)."""
        sources = self.pending_constraints if self.inprogress_constraint is None else [self.inprogress_constraint]
        tokens = []
        for constraint in sources:
            advance = constraint.advance()
            if isinstance(advance, int):
                tokens.append(advance)
            elif isinstance(advance, list):
                tokens.extend(advance)
        return tokens or None

    def reset(self, token_ids: list[int] | None) -> None:
        """Start over and feed `token_ids`."""
        self.init_state()
        for token in token_ids or ():
            self.add(token)
            if self.completed:
                break

    def add(self, token_id: int) -> tuple[bool, bool]:
        """Feed one token: (complete, stepped)."""
        if self.completed:
            return True, False
        complete = stepped = False
        if self.inprogress_constraint is not None:
            stepped, complete, reset = self.inprogress_constraint.update(token_id)
            if reset:
                self.pending_constraints.append(self.inprogress_constraint.copy(stateful=False))
                self.inprogress_constraint = None
            if complete:
                self.complete_constraints.append(self.inprogress_constraint)
                self.inprogress_constraint = None
                if len(self.pending_constraints) == 0:
                    self.completed = True
            return complete, stepped
        for index, pending in enumerate(self.pending_constraints):
            if pending.does_advance(token_id):
                stepped, complete, _ = pending.update(token_id)
                if complete:
                    self.complete_constraints.append(pending)
                    self.inprogress_constraint = None
                else:
                    self.inprogress_constraint = pending
                self.pending_constraints = self.pending_constraints[:index] + self.pending_constraints[index + 1:]
                if len(self.pending_constraints) == 0 and self.inprogress_constraint is None:
                    self.completed = True
                break  # one token steps one constraint
        return complete, stepped

    def copy(self, stateful: bool = True) -> "ConstraintListState":
        new = ConstraintListState(self.constraints)
        if stateful:
            new.complete_constraints = [constraint.copy(stateful=True) for constraint in self.complete_constraints]
            if self.inprogress_constraint is not None:
                new.inprogress_constraint = self.inprogress_constraint.copy(stateful=True)
            new.pending_constraints = [constraint.copy() for constraint in self.pending_constraints]
        return new


def constraints_from_force_words_ids(force_words_ids) -> list:
    """4.55.4's reading of `force_words_ids`: a list of phrases [[ids]] (each a PhrasalConstraint) where an
    entry may instead be a list of alternative phrases [[[ids], [ids]]] (a DisjunctiveConstraint)."""
    if not isinstance(force_words_ids, list) or len(force_words_ids) == 0:
        raise ValueError(force_words_error(force_words_ids))
    constraints = []
    for word_ids in force_words_ids:
        if not isinstance(word_ids, list) or len(word_ids) == 0:
            raise ValueError(force_words_error(force_words_ids))
        if isinstance(word_ids[0], list):
            if any(not isinstance(ids, list) or any(not _is_token_id(t) for t in ids) for ids in word_ids):
                raise ValueError(force_words_error(force_words_ids))
            constraints.append(DisjunctiveConstraint(word_ids))
        else:
            if any(not _is_token_id(t) for t in word_ids):
                raise ValueError(force_words_error(force_words_ids))
            constraints.append(PhrasalConstraint(word_ids))
    return constraints


def _is_token_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def force_words_error(force_words_ids) -> str:
    return ("force_words_ids must be a list of phrases, each a list of token ids ([[12, 7], [30]]), or of "
            "alternatives, each a list of phrases ([[[12], [13]]]); e.g. tokenizer(words, add_special_tokens=False)"
            f".input_ids; got {force_words_ids!r}")
