"""RED metrics, cardinality guard, exposition and USE collectors."""
