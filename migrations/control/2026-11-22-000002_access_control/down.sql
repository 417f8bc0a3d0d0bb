ALTER TABLE control.tenants DROP COLUMN require_2fa_roles;
DROP TABLE control.password_resets;
DROP TABLE control.invitations;
ALTER TABLE control.sessions DROP COLUMN mfa_pending;
DROP TABLE control.recovery_codes;
ALTER TABLE control.users DROP COLUMN totp_secret_enc, DROP COLUMN totp_pending_enc,
    DROP COLUMN totp_enabled_at, DROP COLUMN totp_last_step, DROP COLUMN failed_logins,
    DROP COLUMN locked_until;
