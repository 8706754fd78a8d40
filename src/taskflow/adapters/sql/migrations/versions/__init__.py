"""One module per schema revision, frozen once released: a change of schema is a new one."""
