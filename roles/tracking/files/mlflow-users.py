"""Keep MLflow's users as the installer declares them (run by the mlflow-users job in
the MLflow image): each user in /etc/mlflow-users/<name> (its password) exists, with
that password, and is an admin exactly when listed in MLFLOW_ADMIN_USERS; a user whose
name starts with MLFLOW_MANAGED_USER_PREFIX (the teams') and is not declared any more is
deleted, with its permissions. Writes to MLflow's auth tables through MLflow's own store,
so a rotated password is set without knowing the old one. Prints one line per user, never
a password."""

import os
import sys
import time
from pathlib import Path

from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore


def main():
    users_dir = Path(os.environ.get("MLFLOW_USERS_DIR", "/etc/mlflow-users"))
    admins = set(filter(None, os.environ.get("MLFLOW_ADMIN_USERS", "").split(",")))
    wanted = {path.name: path.read_text().strip() for path in sorted(users_dir.iterdir()) if path.is_file() and not path.name.startswith(".")}
    if not wanted:
        sys.exit(f"no users in {users_dir}")
    store = SqlAlchemyStore()
    # The database may still be starting; CloudNativePG creates it with the Cluster.
    for attempt in range(30):
        try:
            store.init_db(os.environ["MLFLOW_AUTH_DATABASE_URI"])
            break
        except Exception as err:  # noqa: BLE001 (any connection error: retry, then fail)
            print(f"auth database not ready ({type(err).__name__}), retrying", flush=True)
            time.sleep(10)
    else:
        sys.exit("the auth database did not become reachable")
    for name, password in wanted.items():
        admin = name in admins
        if not store.has_user(name, use_primary=True):
            store.create_user(name, password, is_admin=admin)
            print(f"{name}: created{' (admin)' if admin else ''}")
        elif not store.authenticate_user(name, password, use_primary=True) or store.get_user(name).is_admin != admin:
            store.update_user(name, password=password, is_admin=admin)
            print(f"{name}: updated")
        else:
            print(f"{name}: unchanged")
    managed = os.environ.get("MLFLOW_MANAGED_USER_PREFIX", "")
    if managed:
        for user in store.list_users():
            if user.username.startswith(managed) and user.username not in wanted:
                store.delete_user(user.username)
                print(f"{user.username}: deleted (no longer declared)")


if __name__ == "__main__":
    main()
