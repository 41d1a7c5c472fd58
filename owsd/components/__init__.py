"""The paper's parts as plain torch modules (key, encoder, generator, scrambler, cloud, IIN, ledger): no Lightning."""
