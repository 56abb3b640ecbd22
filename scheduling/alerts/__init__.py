"""Staff alerts: something a person must look at (a broken rule, an overdue integration, an
unconfirmed ride home). ``services.staff_alert_raise`` is the one way to raise one."""
