package orders

// SchemaV1 is the first migration's table, for the migration test.
var SchemaV1 = migrations[0].stmts[0]
