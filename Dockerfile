# Web, worker and beat image: the Django site without the torch stack.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# collectstatic needs settings; these throwaway values never reach a running container.
RUN SECRET_KEY=build-only DEBUG=0 python manage.py collectstatic --noinput
RUN useradd --create-home clickme && mkdir -p /data/media /data/exports && chown -R clickme /data
USER clickme
EXPOSE 8000
CMD ["gunicorn", "-c", "clickme_site/gunicorn_conf.py", "clickme_site.wsgi", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]
