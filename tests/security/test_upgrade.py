"""Upgrading an existing install to the team-ready schema (migration 0009) keeps its data and tightens it: join
links already handed out keep working but are stored hashed and expire; a link that carried a deciding role stops
working; the first account becomes the admin."""

from __future__ import annotations

import hashlib

from alembic import command
from alembic.config import Config

from backend.config import PROJECT_ROOT
from backend.db import make_engine


def _config(url: str) -> Config:
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["skip_logging"] = True
    return cfg


def test_an_existing_install_upgrades_with_its_links_hashed_and_its_first_account_admin(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    cfg = _config(url)
    command.upgrade(cfg, "0008")
    engine = make_engine(url)  # foreign keys on, as the app runs
    with engine.begin() as c:
        c.exec_driver_sql(
            "INSERT INTO user (username, display_name, password_hash, created_at) VALUES "
            "('sam', 'Sam', 'x', '2026-01-01'), ('pat', 'Pat', 'x', '2026-01-02')"
        )
        c.exec_driver_sql(
            "INSERT INTO discussion (topic, protocol, rounds, status, created_by, last_seq, max_tokens_per_turn, "
            "parallel_openings, human_turns, created_at, updated_at) "
            "VALUES ('t', 'round_robin', 1, 'draft', 'Sam', 0, 300, 0, 0, '2026-01-01', '2026-01-01')"
        )
        c.exec_driver_sql(
            "INSERT INTO invite (discussion_id, token, role, created_by, revoked, created_at) VALUES "
            "(1, 'old-contributor-link', 'contributor', 1, 0, '2026-01-01'), "
            "(1, 'old-approver-link', 'must_approve', 1, 0, '2026-01-01')"
        )
    command.upgrade(cfg, "head")
    with engine.begin() as c:
        links = dict(c.exec_driver_sql("SELECT token_hash, revoked FROM invite").all())
        admins = dict(c.exec_driver_sql("SELECT username, is_admin FROM user").all())
        dump = "\n".join(c.exec_driver_sql("SELECT name FROM sqlite_master").scalars())
    assert links == {
        hashlib.sha256(b"old-contributor-link").hexdigest(): 0,
        hashlib.sha256(b"old-approver-link").hexdigest(): 1,
    }
    assert admins == {"sam": 1, "pat": 0}
    assert "ix_invite_token_hash" in dump
    command.downgrade(cfg, "0008")  # and back, for an operator who must roll back
    engine.dispose()
