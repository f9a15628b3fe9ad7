from buildflow import Flow, Service

app = Flow()

# a service made by the flow...
api = app.service(base_route="/api", service_id="api")

# ...or on its own, then added (BuildFlow's two spellings)
admin = Service(base_route="/admin", service_id="admin")
app.add_service(admin)


@api.endpoint("/status", method="GET")
def status() -> dict:
    return {"ok": True}


@admin.endpoint("/services", method="GET")
def services() -> list:
    return [service.service_id for service in app.services]
