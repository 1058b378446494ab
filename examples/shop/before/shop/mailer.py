"""E-mails to customers."""

import smtplib
from email.message import EmailMessage

from shop import settings


def send_receipt(to_address, order_id, cents):
    message = EmailMessage()
    message["From"] = settings.SHOP_EMAIL
    message["To"] = to_address
    message["Subject"] = f"Your order {order_id}"
    message.set_content(f"Thank you! We charged {cents / 100:.2f} EUR.")
    with smtplib.SMTP(settings.SMTP_HOST) as smtp:
        smtp.send_message(message)
