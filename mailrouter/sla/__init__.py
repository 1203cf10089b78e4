"""The first-reply clock: business hours, escalation ladders and notifications.

hours.py and ladder.py are pure (time in, decisions out); notify.py renders notices;
webhook.py is the only part here that does I/O.
"""
