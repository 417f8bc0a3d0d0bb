DROP INDEX accounts_name_prefix_idx;
