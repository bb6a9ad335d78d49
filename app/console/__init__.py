"""The web console: pages for operators, supervisors, admins and departments, and their API."""
