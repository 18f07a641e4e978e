"""Field rules: tokenizer, field specs, types, passwords, validators."""
