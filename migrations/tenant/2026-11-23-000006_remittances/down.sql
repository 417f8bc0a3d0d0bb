DROP TABLE remittance_lines;
