"""zuora-workflow-sync: the Zuora Workflow API (``zuora.api``), the Postgres warehouse
(``zuora.warehouse``), and the stages and Airflow glue the DAGs in ``dags/`` call."""
