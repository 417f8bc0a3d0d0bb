DROP TABLE control.jobs;
DROP TABLE control.sessions;
DROP TABLE control.memberships;
DROP TABLE control.users;
DROP TABLE control.tenants;
