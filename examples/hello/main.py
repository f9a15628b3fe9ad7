from buildflow import Flow
from buildflow.dependencies import Scope, dependency


@dependency(scope=Scope.REPLICA)
class MyStringDependency:
    def __init__(self):
        self.my_string = "HELLO!"


app = Flow()
service = app.service()


@service.endpoint("/bob", method="GET")
def bob(my_string_dep: MyStringDependency):
    return my_string_dep.my_string + " BOB!"


@service.endpoint("/sally", method="GET")
def sally(my_string_dep: MyStringDependency):
    return my_string_dep.my_string + " SALLY!"


if __name__ == "__main__":
    app.run()
