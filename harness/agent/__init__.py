"""The agent simulator: Coder's V1 and V2/V3 reinit loops over real HTTP, many per OS process."""
