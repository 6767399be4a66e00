"""The admin web page and the call card page, served on the admin port under /ui (issue 15).

Server-rendered (Jinja2) pages that call the admin API in-process with the signed-in employee's own
token, so every right, validation and CRM rule stays where the API keeps it.
"""
