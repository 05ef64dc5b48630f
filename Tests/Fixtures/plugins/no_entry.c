/* Fixture: a shared object that exports no entry. */
__attribute__((visibility("default"))) int some_other_function(void) { return 42; }
