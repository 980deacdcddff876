"""Airflow notifiers of this package, laid out and registered as Airflow's providers do theirs
(``notifications/`` here, ``notifications`` in ``zuora.provider.get_provider_info``)."""
