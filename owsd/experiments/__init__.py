"""The paper's experiments: protocol settings, the seed runner (`owsd run`), the report (`owsd report`)
and the local sweep loop (`owsd sweep`). They drive the data module and the IIN; commands sit above."""
