-- Duplicate detection looks for accounts whose normalised name starts like the new one's
-- (the first three characters). As `name_key LIKE 'abc%'` that was a scan of every account on
-- each account created (form, import, CRM), since the database's collation is not C; an
-- index on the prefix itself answers it with an equality, in any collation and in generic
-- plans.
CREATE INDEX accounts_name_prefix_idx ON accounts (left(name_key, 3));
