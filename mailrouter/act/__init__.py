"""Act stage: record decisions, compose and send forwards and notices, file the copies."""
