"""Result files: the envelope every one carries (schema, version, machine, argv), and
the typed records of each result kind with their one writer and reader."""
